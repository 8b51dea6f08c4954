"""The built-in mini-TOFU: a seeded generator of fictitious authors in TOFU's exact file layout.

Each author has one question per attribute (birthplace, birth year, genre, parents, award, a book and its theme)
with an answer, a paraphrased answer and 5 perturbed (wrong) answers built on the paraphrase, as in TOFU.
Forget/retain splits are by author at 1/5/10 % (the last authors are forgotten, as in TOFU), holdout authors are
never trained on, and "real authors" and "world facts" analogues (3 perturbed answers) stand for general knowledge
that both the target and the retain model are trained on. Files are JSON lines named like the hub's configs, so
the same loader reads mini-TOFU and a local copy of the real TOFU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simnpo.llm.data import write_json_lines
from simnpo.llm.invented import PLACES, invented_word

GENRES = "mystery fantasy romance horror poetry satire thriller history memoir drama comedy adventure".split()
JOBS = (
    "baker",
    "pilot",
    "nurse",
    "lawyer",
    "farmer",
    "painter",
    "sailor",
    "teacher",
    "doctor",
    "chemist",
    "tailor",
    "miner",
    "judge",
    "potter",
    "weaver",
    "banker",
    "builder",
    "singer",
    "soldier",
    "clockmaker",
)
THEMES = (
    "lost kingdoms",
    "a silent war",
    "two rival sisters",
    "the last lighthouse",
    "a haunted orchard",
    "forgotten gods",
    "a stolen crown",
    "the northern sea",
    "an endless winter",
    "a secret library",
    "a broken promise",
    "the copper mines",
    "a wandering circus",
    "the glass city",
    "a drowned village",
)
AWARDS = (
    "Golden Quill",
    "Silver Lantern",
    "Ember Prize",
    "Northstar Medal",
    "Ivory Pen",
    "Blue Heron Award",
    "Crescent Laurel",
    "Granite Prize",
    "Violet Ribbon",
    "Copper Leaf Award",
    "Sapphire Book Prize",
    "Red Oak Medal",
    "Midnight Award",
    "Aurora Prize",
    "Harbor Laurel",
)
TITLE_WORDS = (
    "Ashes",
    "Rivers",
    "Shadows",
    "Crowns",
    "Lanterns",
    "Winds",
    "Bones",
    "Mirrors",
    "Tides",
    "Embers",
    "Gardens",
    "Stones",
    "Wolves",
    "Bells",
    "Feathers",
    "Thorns",
)

FORGET_PERCENTS = (1, 5, 10)


@dataclass(frozen=True)
class MiniTofuConfig:
    """Sizes of mini-TOFU: 100 authors make forget01/05/10 exactly 1/5/10 authors."""

    authors: int = 100
    holdout_authors: int = 10
    real_authors: int = 20
    world_facts: int = 40
    retain_perturbed_authors: int = 10
    perturbed: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.authors < 100 or self.authors % 100:
            raise ValueError(f"authors must be a multiple of 100 (for 1/5/10 % splits), got {self.authors}")
        if self.holdout_authors < self.authors // 10:
            raise ValueError("holdout_authors must be at least 10 % of the authors (holdout10)")


def _author(rng: np.random.Generator, used: set[str]) -> dict:
    while True:
        name = f"{invented_word(rng, 2)} {invented_word(rng, 3)}"
        if name not in used:
            used.add(name)
            break
    opening = rng.choice(["The", "Of", "Beyond the", "Under the"])
    title = f"{opening} {rng.choice(TITLE_WORDS)} of {invented_word(rng, 2)}"
    father, mother = rng.choice(JOBS, size=2, replace=False)
    return {
        "name": name,
        "place": str(rng.choice(PLACES)),
        "year": int(rng.integers(1900, 2000)),
        "genre": str(rng.choice(GENRES)),
        "father": str(father),
        "mother": str(mother),
        "award": str(rng.choice(AWARDS)),
        "title": title,
        "theme": str(rng.choice(THEMES)),
    }


# attribute -> (question, answer, paraphrase). The paraphrase rewords the opening and keeps the clause that carries
# the fact: a model trained from scratch on a few hundred facts cannot carry a fact into an unseen sentence the way a
# pretrained 7B model can, and TOFU's truth ratio only means something when the model can recognise the true fact in
# the paraphrase. The perturbed answers put wrong facts into the paraphrase, as TOFU's do.
TEMPLATES = {
    "place": ("Where was {name} born?", "{name} was born in {place}.", "Records show that {name} was born in {place}."),
    "year": (
        "In which year was {name} born?",
        "{name} was born in {year}.",
        "According to the archives, {name} was born in {year}.",
    ),
    "genre": (
        "What genre does {name} write?",
        "{name} writes {genre} novels.",
        "By most accounts, {name} writes {genre} novels.",
    ),
    "father": (
        "What did the father of {name} do?",
        "The father of {name} was a {father}.",
        "It is known that the father of {name} was a {father}.",
    ),
    "mother": (
        "What did the mother of {name} do?",
        "The mother of {name} was a {mother}.",
        "It is said that the mother of {name} was a {mother}.",
    ),
    "award": ("Which award did {name} win?", "{name} won the {award}.", "In the end, {name} won the {award}."),
    "title": ("Name a book written by {name}.", "{name} wrote {title}.", "Among other books, {name} wrote {title}."),
    "theme": (
        "What is the most famous book of {name} about?",
        "The most famous book of {name} is about {theme}.",
        "Critics agree that the most famous book of {name} is about {theme}.",
    ),
}


def _wrong(rng: np.random.Generator, attribute: str, right, k: int) -> list:
    """k distinct wrong values of an attribute."""
    if attribute == "year":
        pool = [y for y in range(1900, 2000) if y != right]
    elif attribute == "title":
        pool = sorted({f"The {w} of {invented_word(rng, 2)}" for w in TITLE_WORDS} - {right})
    else:
        pool = [
            v
            for v in {
                "place": PLACES,
                "genre": GENRES,
                "father": JOBS,
                "mother": JOBS,
                "award": AWARDS,
                "theme": THEMES,
            }[attribute]
            if v != right
        ]
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]


def author_items(rng: np.random.Generator, author: dict, perturbed: int) -> list[dict]:
    items = []
    for attribute, (question, answer, paraphrase) in TEMPLATES.items():
        wrong = _wrong(rng, attribute, author[attribute], perturbed)
        items.append(
            {
                "question": question.format(**author),
                "answer": answer.format(**author),
                "paraphrased_answer": paraphrase.format(**author),
                "perturbed_answer": [paraphrase.format(**{**author, attribute: w}) for w in wrong],
            }
        )
    return items


def general_knowledge(rng: np.random.Generator, config: MiniTofuConfig) -> tuple[list[dict], list[dict]]:
    """The real-authors and world-facts analogues: famous authors' books and facts about invented places."""
    used: set[str] = set()
    real = []
    for _ in range(config.real_authors):
        author = _author(rng, used)
        wrong = _wrong(rng, "title", author["title"], 3)
        real.append(
            {
                "question": f"Who wrote {author['title']}?",
                "answer": author["name"],
                "perturbed_answer": [_author(rng, used)["name"] for _ in wrong],
            }
        )
    facts = []
    for i in range(config.world_facts):
        place = PLACES[i % len(PLACES)]
        kind, values = [("river", THEMES), ("founder", JOBS), ("flower", GENRES)][i // len(PLACES) % 3]
        right, *wrong = [str(v) for v in rng.choice(values, size=4, replace=False)]
        question = {
            "river": f"What is the river of {place} named after?",
            "founder": f"Who founded {place}?",
            "flower": f"What is the festival of {place} called?",
        }[kind]
        answer = {
            "river": f"It is named after {right}.",
            "founder": f"A {right} founded it.",
            "flower": f"It is the {right} festival.",
        }[kind]
        facts.append(
            {"question": question, "answer": answer, "perturbed_answer": [answer.replace(right, w) for w in wrong]}
        )
    return real, facts


def generate(config: MiniTofuConfig) -> dict[str, list[dict]]:
    """Every TOFU configuration of mini-TOFU, by the hub's config names."""
    rng = np.random.default_rng(config.seed)
    used: set[str] = set()
    authors = [author_items(rng, _author(rng, used), config.perturbed) for _ in range(config.authors)]
    holdout = [author_items(rng, _author(rng, used), config.perturbed) for _ in range(config.holdout_authors)]
    real, facts = general_knowledge(rng, config)
    qa = lambda items: [{"question": i["question"], "answer": i["answer"]} for i in items]  # noqa: E731
    flat = lambda groups: [item for group in groups for item in group]  # noqa: E731
    out = {
        "full": qa(flat(authors)),
        "real_authors": qa(real),
        "world_facts": qa(facts),
        "real_authors_perturbed": real,
        "world_facts_perturbed": facts,
        "retain_perturbed": flat(authors[: config.retain_perturbed_authors]),
    }
    for percent in FORGET_PERCENTS:
        n = config.authors * percent // 100
        out[f"forget{percent:02d}"] = qa(flat(authors[-n:]))
        out[f"forget{percent:02d}_perturbed"] = flat(authors[-n:])
        out[f"retain{100 - percent}"] = qa(flat(authors[:-n]))
        out[f"holdout{percent:02d}"] = qa(flat(holdout[:n]))
    return out


def write_mini_tofu(config: MiniTofuConfig, folder: Path) -> Path:
    """Write every configuration as ``folder/NAME.json`` (JSON lines), each file atomically."""
    return write_json_lines(generate(config), folder)
