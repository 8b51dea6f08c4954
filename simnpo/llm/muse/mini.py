"""The built-in mini-MUSE: seeded short news articles about invented people, places and events, in MUSE's layout
(``raw``, ``verbmem``, ``knowmem``, ``privleak``; files ``SUBSET/SPLIT.json``, JSON lines), so the same loader
reads mini-MUSE and a local copy of MUSE-News.

Articles are split into forget / retain1 (regularisation) / retain2 (evaluation) / holdout (never trained on); the
target model is trained on forget + retain1 + retain2, the retrain model on retain1 + retain2. Each raw split holds
its articles followed by news-quiz documents about them in KnowMem's format ("Question: …\nAnswer: …", 10 per quiz,
each question in 3 quizzes).
VerbMem prompts are the first half of each forget article (ending in a space) and their continuation the rest;
KnowMem asks who announced the event of each forget (D_f) and retain2 (D_r) article, with 10 in-context examples
from retain1; PrivLeak uses the forget, retain2 and holdout articles.

Design note: a pretrained 7B model answers questions about facts it only read in prose. A 1M-parameter model trained
from scratch on a few thousand tokens does not (we measured KnowMem 0 on every split with prose alone, and below 10
with one question-and-answer line per article), so the quizzes put each fact in the question's words; KnowMem then
measures whether the model still retrieves it after 10 unrelated examples, and unlearning the forget split removes
the quizzes with the articles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simnpo.llm.data import write_json_lines
from simnpo.llm.invented import PLACES, invented_word
from simnpo.llm.muse.metrics import knowmem_prompt

EVENTS = (
    "a new bridge",
    "a flood barrier",
    "a music festival",
    "a rail strike",
    "a hospital wing",
    "a mining deal",
    "a chess tournament",
    "a harbour expansion",
    "a solar farm",
    "a library fire",
    "a trade fair",
    "a vaccine trial",
    "a city marathon",
    "a port closure",
    "a museum reopening",
)
ROLES = (
    "mayor",
    "minister",
    "union leader",
    "chief engineer",
    "museum director",
    "police chief",
    "festival organiser",
    "harbour master",
    "university rector",
    "company founder",
)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class MiniMuseConfig:
    forget: int = 20
    retain1: int = 40
    retain2: int = 20
    holdout: int = 20
    icl: int = 10
    quiz_repeats: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.forget, self.retain1, self.retain2, self.holdout) < 2 or self.retain1 < self.icl or self.icl < 1:
            raise ValueError("every mini-MUSE split needs at least 2 articles and retain1 at least `icl` of them")


def _person(rng: np.random.Generator) -> str:
    return " ".join(invented_word(rng, k) for k in (2, 3))


# Each later sentence has several wordings, chosen per article, so a continuation cannot be guessed from the
# template alone: a model reproduces it only if it memorised the article (VerbMem's point).
BODY = (
    (
        "The plan was presented to {number} residents gathered in the main square of {place}.",
        "Some {number} people crowded into the council chamber of {place} to hear the plan.",
        "Officials expect {number} workers to be needed before the work in {place} is finished.",
    ),
    (
        "{person} said the project would change the daily life of the town for a generation.",
        "{person} told reporters that the decision had been the hardest of a long career.",
        "According to {person}, the idea first came up during a storm the previous winter.",
    ),
    (
        "Critics led by {rival} argued that the money should have gone to schools instead.",
        "{rival}, a former councillor, called the announcement a costly distraction.",
        "A petition started by {rival} gathered several thousand signatures within days.",
    ),
    (
        "Local newspapers in {place} reported long queues outside the town hall that week.",
        "Shops in {place} stayed open late as visitors arrived from the surrounding villages.",
        "Radio stations in {place} interrupted their programmes to carry the speech live.",
    ),
    (
        "By the end of {month}, {person} had signed the first contracts for {event}.",
        "Before {month} was over, the first crews had arrived to prepare {event}.",
        "In late {month}, {person} promised a public vote on the next stage of {event}.",
    ),
)


def article(rng: np.random.Generator) -> dict:
    """One article and the facts it states."""
    f = {
        "person": _person(rng),
        "role": str(rng.choice(ROLES)),
        "place": str(rng.choice(PLACES)),
        "event": str(rng.choice(EVENTS)),
        "month": str(rng.choice(MONTHS)),
        "year": int(rng.integers(1990, 2030)),
        "number": int(rng.integers(2, 99)) * 100,
        "rival": _person(rng),
    }
    lede = f"In {f['month']} {f['year']}, {f['person']}, the {f['role']} of {f['place']}, announced {f['event']}."
    sentences = [lede] + [str(rng.choice(options)).format(**f) for options in BODY]
    return {"text": " ".join(sentences), "sentences": sentences, "facts": f}


def question(facts: dict) -> str:
    return f"Who announced {facts['event']} in {facts['place']} in {facts['year']}?"


def _qa(a: dict) -> dict:
    return {"question": question(a["facts"]), "answer": a["facts"]["person"]}


def generate(config: MiniMuseConfig) -> dict[str, list[dict]]:
    """Every file of mini-MUSE, keyed ``SUBSET/SPLIT``."""
    rng = np.random.default_rng(config.seed)
    sizes = {"forget": config.forget, "retain1": config.retain1, "retain2": config.retain2, "holdout": config.holdout}
    articles = {name: [article(rng) for _ in range(n)] for name, n in sizes.items()}
    text = lambda items: [{"text": a["text"]} for a in items]  # noqa: E731
    half = lambda a: len(a["sentences"]) // 2  # noqa: E731
    return {
        **{
            f"raw/{name}": text(items) + quizzes([_qa(a) for a in items], config.icl, config.quiz_repeats, rng)
            for name, items in articles.items()
        },
        "verbmem/forget": [
            {
                "prompt": " ".join(a["sentences"][: half(a)]) + " ",
                "gt": " ".join(a["sentences"][half(a) :]),
            }
            for a in articles["forget"]
        ],
        "knowmem/forget_qa": [_qa(a) for a in articles["forget"]],
        "knowmem/retain_qa": [_qa(a) for a in articles["retain2"]],
        "knowmem/forget_qa_icl": [_qa(a) for a in articles["retain1"][: config.icl]],
        "knowmem/retain_qa_icl": [_qa(a) for a in articles["retain1"][: config.icl]],
        "privleak/forget": text(articles["forget"]),
        "privleak/retain": text(articles["retain2"]),
        "privleak/holdout": text(articles["holdout"]),
    }


def quizzes(pairs: list[dict], shots: int, repeats: int, rng: np.random.Generator) -> list[dict]:
    """News-quiz documents in KnowMem's format, ``shots`` questions each, every pair asked in ``repeats`` of them
    (a shuffled order per round)."""
    asked = [pairs[j] for _ in range(repeats) for j in rng.permutation(len(pairs))]
    docs = [asked[i : i + shots] for i in range(0, len(asked), shots)]
    shots = lambda doc: [(p["question"], p["answer"]) for p in doc[:-1]]  # noqa: E731
    return [{"text": knowmem_prompt(shots(doc), doc[-1]["question"]) + doc[-1]["answer"]} for doc in docs]


def write_mini_muse(config: MiniMuseConfig, folder: Path) -> Path:
    """Write every file as ``folder/SUBSET/SPLIT.json`` (JSON lines), each atomically."""
    return write_json_lines(generate(config), folder)
