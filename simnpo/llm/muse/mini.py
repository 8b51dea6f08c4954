"""The built-in mini-MUSE: seeded short news articles about invented people, places and events, in MUSE's layout
(``raw``, ``verbmem``, ``knowmem``, ``privleak``; files ``SUBSET/SPLIT.json``, JSON lines), so the same loader
reads mini-MUSE and a local copy of MUSE-News.

Articles are split into forget / retain1 (regularisation, in-context examples) / retain2 (evaluation) / holdout
(never trained on), plus ``raw/filler``: as many unrelated articles as the forget split, which the retrain model
reads in place of the forget articles (the target reads forget + retain1 + retain2, the retrain model filler +
retain1 + retain2), so that both read as much text and as many quizzes and reach the same training loss; the retrain
model still never sees a forget fact. Every article has its own people (names are never reused), so no retain fact
depends on a forget article. Each raw split holds its articles followed by news-quiz documents about them in
KnowMem's format ("Question: …\\nAnswer: …", 10 per quiz, each question in ``quiz_repeats`` quizzes).

MUSE's set sizes (100 per set) from 25 articles per split (retain1: 10, the in-context examples and the unlearning's
retain text), which is what differs from MUSE:
- KnowMem asks 4 questions about each forget (D_f) and retain2 (D_r) article (whose plan the critic opposed, who
  opposed it, in which town, in which year), with 10 in-context examples from retain1 (MUSE-News: 100 questions on
  889 forget documents).
- VerbMem cuts each forget article after its 2nd, 3rd, 4th and 5th sentence (prompt) and continues with the rest
  (MUSE: 100 different passages).
- PrivLeak's forget, retain and holdout texts are the 4 two-sentence passages of each forget, retain2 and holdout
  article (MUSE: 100 whole documents each).
More articles would cost fine-tuning time (articles × epochs) that the 2-core default run does not have.

Design note: a pretrained 7B model answers questions about facts it only read in prose. A 1M-parameter model trained
from scratch on a few thousand tokens does not (we measured KnowMem 0 on every split with prose alone, and below 10
with one question-and-answer line per article), so the quizzes put each fact in the question's words; KnowMem then
measures whether the model still retrieves it after 10 unrelated examples, and unlearning the forget split removes
the quizzes with the articles. Each question is asked in 8 quizzes, each time among other questions: with 3, one
training of the target or retrain model answered 49 % of the retain questions and another 85 %; with 8 both answer
90-100 %, so the retrain model's utility is the target's, as in MUSE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simnpo.llm.data import write_json_lines
from simnpo.llm.invented import PLACES, invented_word
from simnpo.llm.muse.metrics import knowmem_prompt

# Bumped whenever the generator's output changes for the same config: part of the built-in's cache key.
GENERATOR_REVISION = 2

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
SPLITS = ("forget", "retain1", "retain2", "holdout", "filler")
VERBMEM_CUTS = (2, 3, 4, 5)  # prompts end after these many sentences
PASSAGE = 2  # sentences per PrivLeak text


@dataclass(frozen=True)
class MiniMuseConfig:
    """Articles per split (``raw/filler`` has as many as ``forget``), in-context examples, quiz rounds, seed."""

    forget: int = 25
    retain1: int = 10
    retain2: int = 25
    holdout: int = 25
    icl: int = 10
    quiz_repeats: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.forget, self.retain1, self.retain2, self.holdout) < 2 or self.retain1 < self.icl or self.icl < 1:
            raise ValueError("every mini-MUSE split needs at least 2 articles and retain1 at least `icl` of them")

    def size(self, split: str) -> int:
        return self.forget if split == "filler" else getattr(self, split)


def _person(rng: np.random.Generator, used: set[str]) -> str:
    """A name no earlier article used, so that no fact of one article mentions the people of another."""
    while (name := " ".join(invented_word(rng, k) for k in (2, 3))) in used:
        pass
    used.add(name)
    return name


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
        "The first stage is expected to cost {cost} million crowns, most of it from a regional fund.",
        "Engineers put the cost at {cost} million crowns, twice the first estimate.",
        "The council set aside {cost} million crowns for the work over the next three years.",
    ),
    (
        "By the end of {month}, {person} had signed the first contracts for {event}.",
        "Before {month} was over, the first crews had arrived to prepare {event}.",
        "In late {month}, {person} promised a public vote on the next stage of {event}.",
    ),
    (
        "Neighbouring towns are watching {place} closely, hoping to copy the idea.",
        "{rival} said the fight over {event} was far from over.",
        "A second announcement is expected after the summer, once the plans are final.",
    ),
)


def article(rng: np.random.Generator, used: set[str]) -> dict:
    """One article (8 sentences) and the facts it states; ``used`` holds the names taken so far."""
    f = {
        "person": _person(rng, used),
        "role": str(rng.choice(ROLES)),
        "place": str(rng.choice(PLACES)),
        "event": str(rng.choice(EVENTS)),
        "month": str(rng.choice(MONTHS)),
        "year": int(rng.integers(1990, 2030)),
        "number": int(rng.integers(2, 99)) * 100,
        "cost": int(rng.integers(2, 90)),
        "rival": _person(rng, used),
    }
    lede = f"In {f['month']} {f['year']}, {f['person']}, the {f['role']} of {f['place']}, announced {f['event']}."
    sentences = [lede] + [str(rng.choice(options)).format(**f) for options in BODY]
    return {"text": " ".join(sentences), "sentences": sentences, "facts": f}


def questions(facts: dict) -> list[dict]:
    """KnowMem's four questions about an article, each asked by a name only that article has. (Asked by event, town
    and year, which articles share, "who announced it" was answered 30-44 % of the time where the others were 70-100
    %, and it alone set the target and retrain models' KnowMem on D_r apart.)"""
    f = facts
    return [
        {"question": f"Whose plan did {f['rival']} oppose?", "answer": f["person"]},
        {"question": f"Who opposed the plan of {f['person']}?", "answer": f["rival"]},
        {"question": f"In which town did {f['person']} announce {f['event']}?", "answer": f["place"]},
        {"question": f"In which year did {f['person']} announce {f['event']}?", "answer": str(f["year"])},
    ]


def _qa(items: list[dict]) -> list[dict]:
    return [qa for a in items for qa in questions(a["facts"])]


def _icl(items: list[dict], n: int) -> list[dict]:
    """``n`` examples from ``n`` articles, cycling through the four kinds of question."""
    return [questions(a["facts"])[i % 4] for i, a in enumerate(items[:n])]


def _verbmem(items: list[dict]) -> list[dict]:
    cut = lambda a, k: {"prompt": " ".join(a["sentences"][:k]) + " ", "gt": " ".join(a["sentences"][k:])}  # noqa: E731
    return [cut(a, k) for a in items for k in VERBMEM_CUTS]


def _passages(items: list[dict]) -> list[dict]:
    return [
        {"text": " ".join(a["sentences"][i : i + PASSAGE])}
        for a in items
        for i in range(0, len(a["sentences"]), PASSAGE)
    ]


def generate(config: MiniMuseConfig) -> dict[str, list[dict]]:
    """Every file of mini-MUSE, keyed ``SUBSET/SPLIT``."""
    rng = np.random.default_rng(config.seed)
    used: set[str] = set()
    articles = {name: [article(rng, used) for _ in range(config.size(name))] for name in SPLITS}
    raw = {
        f"raw/{name}": [{"text": a["text"]} for a in items] + quizzes(_qa(items), config.icl, config.quiz_repeats, rng)
        for name, items in articles.items()
    }
    return {
        **raw,
        "verbmem/forget": _verbmem(articles["forget"]),
        "knowmem/forget_qa": _qa(articles["forget"]),
        "knowmem/retain_qa": _qa(articles["retain2"]),
        "knowmem/forget_qa_icl": _icl(articles["retain1"], config.icl),
        "knowmem/retain_qa_icl": _icl(articles["retain1"], config.icl),
        "privleak/forget": _passages(articles["forget"]),
        "privleak/retain": _passages(articles["retain2"]),
        "privleak/holdout": _passages(articles["holdout"]),
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
