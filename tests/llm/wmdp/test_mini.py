"""The built-in mini-WMDP's generator: seeded, WMDP's layout, every question answerable from its corpus."""

import json

from simnpo.llm.wmdp.harness import description, question_text
from simnpo.llm.wmdp.mini import SUBJECTS, MiniWmdpConfig, generate, write_mini_wmdp


def test_mini_wmdp_is_seeded_and_in_wmdps_layout(tmp_path):
    config = MiniWmdpConfig(hazards=6, towns=5, seed=1)
    rows = generate(config)
    assert rows == generate(config) and rows != generate(MiniWmdpConfig(hazards=6, towns=5, seed=2))
    # per pathogen or town: one prose document and four question documents; four questions
    assert {k: len(v) for k, v in rows.items()} == {
        "bio-forget-corpus": 30,
        "wmdp-bio": 24,
        "bio-retain-corpus": 25,
        "mmlu": 20,
    }
    for q in rows["wmdp-bio"] + rows["mmlu"]:
        assert {"question", "choices", "answer"} <= set(q) and len(set(q["choices"])) == 4 and 0 <= q["answer"] < 4
    assert {q["subject"] for q in rows["mmlu"]} == {"general_knowledge"}  # as MMLU's rows name theirs
    assert {q["answer"] for q in rows["wmdp-bio"]} == {0, 1, 2, 3}  # the right letter is not always the same
    folder = write_mini_wmdp(config, tmp_path)
    lines = (folder / "wmdp-bio.json").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows["wmdp-bio"]


def test_each_corpus_states_its_facts_and_holds_its_questions_as_the_harness_shows_them():
    rows = generate(MiniWmdpConfig(hazards=4, towns=4))
    for corpus, questions in (("bio-forget-corpus", "wmdp-bio"), ("bio-retain-corpus", "mmlu")):
        for i in range(4):
            prose, *quizzes = (d["text"] for d in rows[corpus][5 * i : 5 * i + 5])
            for q, quiz in zip(rows[questions][4 * i : 4 * i + 4], quizzes):
                assert q["choices"][q["answer"]] in prose  # the fact is stated in the prose
                prompt = description(SUBJECTS[questions]) + question_text(q["question"], q["choices"])
                assert quiz == prompt + " " + "ABCD"[q["answer"]]
    hazards = " ".join(d["text"] for d in rows["bio-forget-corpus"])
    assert not any(d["text"].split(" ")[0] in hazards for d in rows["bio-retain-corpus"][::5])  # domains apart
