"""The built-in mini-MUSE: MUSE's layout and set sizes, disjoint splits, facts the questions ask about, retain facts
independent of the forget articles, determinism."""

import pytest

from simnpo.llm.muse.data import load_muse
from simnpo.llm.muse.mini import MiniMuseConfig, generate, write_mini_muse

SETS = ("knowmem/forget_qa", "knowmem/retain_qa", "verbmem/forget", "privleak/forget", "privleak/retain")


def test_layout_loads_through_the_muse_loader_with_muse_set_sizes(tmp_path):
    folder = write_mini_muse(MiniMuseConfig(), tmp_path)
    for name in (*SETS, "privleak/holdout"):
        assert len(load_muse(folder, *name.split("/"))) == 100, name  # MUSE's 100 per set
    assert len(load_muse(folder, "knowmem", "forget_qa_icl")) == 10
    # 25 articles, then 25 × 4 questions × 8 rounds in quizzes of 10
    assert len(load_muse(folder, "raw", "forget")) == 25 + 80 == len(load_muse(folder, "raw", "filler"))


def test_splits_are_disjoint_and_questions_are_answered_by_their_articles_and_quizzes():
    config = MiniMuseConfig(forget=5, retain1=10, retain2=5, holdout=5)
    data = generate(config)
    articles = {name: [r["text"] for r in data[f"raw/{name}"][: config.size(name)]] for name in ("forget", "retain2")}
    passages = {name: {r["text"] for r in data[f"privleak/{name}"]} for name in ("forget", "retain", "holdout")}
    assert not passages["forget"] & passages["retain"] and not passages["holdout"] & (
        passages["forget"] | passages["retain"]
    )
    for qa, source in (("knowmem/forget_qa", "forget"), ("knowmem/retain_qa", "retain2")):
        quizzes = "".join(r["text"] for r in data[f"raw/{source}"][config.size(source) :])
        for i, row in enumerate(data[qa]):
            assert row["answer"] in articles[source][i // 4]  # four questions per article, in order
            # every question is asked config.quiz_repeats times in its split's quizzes, in KnowMem's format
            assert quizzes.count(f"Question: {row['question']}\nAnswer: {row['answer']}") == config.quiz_repeats
    for i, row in enumerate(data["verbmem/forget"]):
        assert row["prompt"] + row["gt"] == articles["forget"][i // 4] and row["prompt"].endswith(" ")
    assert all(any(p["text"] in a for a in articles["forget"]) for p in data["privleak/forget"])
    assert not {r["question"] for r in data["knowmem/forget_qa_icl"]} & {
        r["question"] for r in data["knowmem/forget_qa"]
    }


def test_no_retain_or_filler_text_mentions_a_forget_person():
    """The retain facts do not depend on the forget articles: the people of every forget article (who announced,
    who opposed) appear nowhere in the retain1, retain2, filler or holdout files, nor in a retain question."""
    data = generate(MiniMuseConfig())
    people = {r["answer"] for i, r in enumerate(data["knowmem/forget_qa"]) if i % 4 < 2}
    assert len(people) == 50  # two people per forget article, none shared
    forget_files = ("raw/forget", "verbmem/forget", "knowmem/forget_qa", "privleak/forget")
    others = [r[k] for name, rows in data.items() if name not in forget_files for r in rows for k in r]
    assert not [p for p in people for text in others if p in text]


def test_seeded_and_validated():
    assert generate(MiniMuseConfig(seed=1)) == generate(MiniMuseConfig(seed=1))
    assert generate(MiniMuseConfig(seed=1)) != generate(MiniMuseConfig(seed=2))
    with pytest.raises(ValueError, match="at least 2 articles"):
        MiniMuseConfig(forget=1)
