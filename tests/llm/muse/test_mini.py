"""The built-in mini-MUSE: MUSE's layout, disjoint splits, facts the questions ask about, determinism."""

import pytest

from simnpo.llm.muse.data import load_muse
from simnpo.llm.muse.mini import MiniMuseConfig, generate, write_mini_muse


def test_layout_loads_through_the_muse_loader(tmp_path):
    folder = write_mini_muse(MiniMuseConfig(), tmp_path)
    assert len(load_muse(folder, "raw", "forget")) == 20 + 6 and len(load_muse(folder, "raw", "holdout")) == 20 + 6
    assert len(load_muse(folder, "knowmem", "forget_qa_icl")) == 10
    for split in ("forget", "retain", "holdout"):
        assert load_muse(folder, "privleak", split)


def test_splits_are_disjoint_and_questions_are_answered_by_their_articles_and_quizzes():
    config = MiniMuseConfig()
    data = generate(config)
    articles = {name: data[f"privleak/{name}"] for name in ("forget", "holdout")}
    articles["retain2"] = data["privleak/retain"]
    texts = {name: {r["text"] for r in rows} for name, rows in articles.items()}
    names = list(texts)
    assert all(not texts[a] & texts[b] for i, a in enumerate(names) for b in names[i + 1 :])
    for qa, source in (("knowmem/forget_qa", "forget"), ("knowmem/retain_qa", "retain2")):
        raw = [r["text"] for r in data[f"raw/{source}"]]
        assert raw[: len(articles[source])] == [r["text"] for r in articles[source]]  # articles, then quizzes
        quizzes = "".join(raw[len(articles[source]) :])
        for row, article in zip(data[qa], articles[source]):
            assert row["answer"] in article["text"]
            # every question is asked config.quiz_repeats times in its split's quizzes, in KnowMem's format
            assert quizzes.count(f"Question: {row['question']}\nAnswer: {row['answer']}") == config.quiz_repeats
    for row, article in zip(data["verbmem/forget"], articles["forget"]):
        assert row["prompt"] + row["gt"] == article["text"] and row["prompt"].endswith(" ")
    assert not {r["question"] for r in data["knowmem/forget_qa_icl"]} & {
        r["question"] for r in data["knowmem/forget_qa"]
    }


def test_seeded_and_validated():
    assert generate(MiniMuseConfig(seed=1)) == generate(MiniMuseConfig(seed=1))
    assert generate(MiniMuseConfig(seed=1)) != generate(MiniMuseConfig(seed=2))
    with pytest.raises(ValueError, match="at least 2 articles"):
        MiniMuseConfig(forget=1)
