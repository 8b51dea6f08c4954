"""The built-in mini-TOFU: TOFU's layout, splits by author, determinism."""

import pytest

from simnpo.llm.tofu.mini import MiniTofuConfig, generate


def test_configs_and_sizes_follow_tofu():
    data = generate(MiniTofuConfig())
    per_author = len(data["full"]) // 100
    for percent, retain in ((1, "retain99"), (5, "retain95"), (10, "retain90")):
        forget = data[f"forget{percent:02d}"]
        assert len(forget) == percent * per_author
        assert len(data[retain]) + len(forget) == len(data["full"])
        assert data[f"forget{percent:02d}_perturbed"][0].keys() >= {"paraphrased_answer", "perturbed_answer"}
        assert len(data[f"holdout{percent:02d}"]) == len(forget)
    assert all(len(r["perturbed_answer"]) == 5 for r in data["forget10_perturbed"] + data["retain_perturbed"])
    assert all(len(r["perturbed_answer"]) == 3 for r in data["real_authors_perturbed"] + data["world_facts_perturbed"])


def test_splits_are_by_author_and_holdout_is_unseen():
    data = generate(MiniTofuConfig())
    forget_questions = {r["question"] for r in data["forget10"]}
    assert not forget_questions & {r["question"] for r in data["retain90"]}
    assert forget_questions == {r["question"] for r in data["forget10_perturbed"]}
    assert {r["question"] for r in data["forget01"]} <= {r["question"] for r in data["forget05"]} <= forget_questions
    assert not {r["question"] for r in data["holdout10"]} & {r["question"] for r in data["full"]}
    assert {r["question"] for r in data["retain_perturbed"]} <= {r["question"] for r in data["retain99"]}


def test_perturbed_answers_are_wrong_variants_of_the_paraphrase():
    for row in generate(MiniTofuConfig())["forget10_perturbed"]:
        assert row["paraphrased_answer"] not in row["perturbed_answer"]
        assert len(set(row["perturbed_answer"])) == 5
        # same sentence as the paraphrase but for the fact
        shared = set(row["paraphrased_answer"].split()) & set(row["perturbed_answer"][0].split())
        assert len(shared) >= len(row["paraphrased_answer"].split()) - 4


def test_generation_is_seeded():
    assert generate(MiniTofuConfig(seed=3)) == generate(MiniTofuConfig(seed=3))
    assert generate(MiniTofuConfig(seed=3))["full"] != generate(MiniTofuConfig(seed=4))["full"]


def test_bad_sizes():
    with pytest.raises(ValueError, match="multiple of 100"):
        MiniTofuConfig(authors=50)
