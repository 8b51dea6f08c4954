"""The built-in mini-MUSE: seeded short news articles about invented people, places and events, in MUSE's layout
(``raw``, ``verbmem``, ``knowmem``, ``privleak``; files ``SUBSET/SPLIT.json``, JSON lines), so the same loader
reads mini-MUSE and a local copy of MUSE-News.

Articles are split into forget / retain1 (regularisation) / retain2 (evaluation) / holdout (never trained on); the
target model is trained on forget + retain1 + retain2, the retrain model on retain1 + retain2.
VerbMem prompts are the first half of each forget article and their continuation the rest; KnowMem asks one fact of
each forget (D_f) and retain2 (D_r) article, with 10 in-context examples from retain1; PrivLeak uses the forget,
retain2 and holdout texts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simnpo.llm.mini_tofu import PLACES, SYLLABLES
from simnpo.runs import atomic_path

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
    forget: int = 30
    retain1: int = 60
    retain2: int = 30
    holdout: int = 30
    icl: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.forget, self.retain1, self.retain2, self.holdout) < 2 or self.retain1 < self.icl:
            raise ValueError("every mini-MUSE split needs at least 2 articles and retain1 at least `icl` of them")


def _person(rng: np.random.Generator) -> str:
    return " ".join("".join(rng.choice(SYLLABLES, size=k)).capitalize() for k in (2, 3))


def article(rng: np.random.Generator) -> dict:
    """One article and the facts it states."""
    facts = {
        "person": _person(rng),
        "role": str(rng.choice(ROLES)),
        "place": str(rng.choice(PLACES)),
        "event": str(rng.choice(EVENTS)),
        "month": str(rng.choice(MONTHS)),
        "year": int(rng.integers(1990, 2030)),
        "number": int(rng.integers(2, 99)) * 100,
        "rival": _person(rng),
    }
    f = facts
    sentences = [
        f"In {f['month']} {f['year']}, {f['person']}, the {f['role']} of {f['place']}, announced {f['event']}.",
        f"The plan was presented to {f['number']} residents gathered in the main square of {f['place']}.",
        f"{f['person']} said the project would change the daily life of the town for a generation.",
        f"Critics led by {f['rival']} argued that the money should have gone to schools instead.",
        f"Local newspapers in {f['place']} reported long queues outside the town hall that week.",
        f"By the end of {f['month']}, {f['person']} had signed the first contracts for {f['event']}.",
    ]
    return {"text": " ".join(sentences), "sentences": sentences, "facts": facts}


def _qa(a: dict) -> dict:
    f = a["facts"]
    return {"question": f"Who announced {f['event']} in {f['place']} in {f['year']}?", "answer": f["person"]}


def generate(config: MiniMuseConfig) -> dict[str, list[dict]]:
    """Every file of mini-MUSE, keyed ``SUBSET/SPLIT``."""
    rng = np.random.default_rng(config.seed)
    sizes = {"forget": config.forget, "retain1": config.retain1, "retain2": config.retain2, "holdout": config.holdout}
    articles = {name: [article(rng) for _ in range(n)] for name, n in sizes.items()}
    text = lambda items: [{"text": a["text"]} for a in items]  # noqa: E731
    half = lambda a: len(a["sentences"]) // 2  # noqa: E731
    return {
        **{f"raw/{name}": text(items) for name, items in articles.items()},
        "verbmem/forget": [
            {"prompt": " ".join(a["sentences"][: half(a)]), "gt": " " + " ".join(a["sentences"][half(a) :])}
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


def write_mini_muse(config: MiniMuseConfig, folder: Path) -> Path:
    """Write every file as ``folder/SUBSET/SPLIT.json`` (JSON lines), each atomically."""
    for name, rows in generate(config).items():
        with atomic_path(Path(folder) / f"{name}.json") as tmp:
            tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return Path(folder)
