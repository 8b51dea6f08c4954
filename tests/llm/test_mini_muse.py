"""The built-in mini-MUSE: MUSE's layout, disjoint splits, facts the questions ask about, determinism."""

import pytest

from simnpo.llm.mini_muse import MiniMuseConfig, generate, write_mini_muse
from simnpo.llm.muse_data import load_muse


def test_layout_loads_through_the_muse_loader(tmp_path):
    folder = write_mini_muse(MiniMuseConfig(), tmp_path)
    assert len(load_muse(folder, "raw", "forget")) == 30 and len(load_muse(folder, "raw", "holdout")) == 30
    assert len(load_muse(folder, "knowmem", "forget_qa_icl")) == 10
    for split in ("forget", "retain", "holdout"):
        assert load_muse(folder, "privleak", split)


def test_splits_are_disjoint_and_questions_are_answered_by_their_articles():
    data = generate(MiniMuseConfig())
    texts = {name: {r["text"] for r in data[f"raw/{name}"]} for name in ("forget", "retain1", "retain2", "holdout")}
    names = list(texts)
    assert all(not texts[a] & texts[b] for i, a in enumerate(names) for b in names[i + 1 :])
    for qa, source in (("knowmem/forget_qa", "forget"), ("knowmem/retain_qa", "retain2")):
        for row, text in zip(data[qa], [r["text"] for r in data[f"raw/{source}"]]):
            assert row["answer"] in text
    for row, text in zip(data["verbmem/forget"], [r["text"] for r in data["raw/forget"]]):
        assert row["prompt"] + row["gt"] == text
    assert {r["text"] for r in data["privleak/forget"]} == texts["forget"]
    assert not {r["question"] for r in data["knowmem/forget_qa_icl"]} & {
        r["question"] for r in data["knowmem/forget_qa"]
    }


def test_seeded_and_validated():
    assert generate(MiniMuseConfig(seed=1)) == generate(MiniMuseConfig(seed=1))
    assert generate(MiniMuseConfig(seed=1)) != generate(MiniMuseConfig(seed=2))
    with pytest.raises(ValueError, match="at least 2 articles"):
        MiniMuseConfig(forget=1)
