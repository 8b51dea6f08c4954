"""WMDP's data: question files checked for WMDP's layout, corpora read for their ``text`` (only texts longer than
the WMDP repository's 50 characters), the gated bio forget corpus only from a given file."""

import json

import pytest

from simnpo.llm.wmdp.data import GATED, MIN_CHARS, load_corpus, load_questions


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_questions_need_four_choices_an_answer_index_and_for_mmlu_a_subject(tmp_path):
    question = {"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 2}
    write(tmp_path / "wmdp-cyber.json", [question])
    assert load_questions(tmp_path, "wmdp_cyber") == [question]
    write(tmp_path / "mmlu.json", [question])
    with pytest.raises(ValueError, match="WMDP mmlu item 0 has no field subject"):
        load_questions(tmp_path, "mmlu")
    write(tmp_path / "wmdp-bio.json", [question, {**question, "choices": ["a", "b", "c"]}])
    with pytest.raises(ValueError, match="item 1 needs four choices and an answer index 0-3"):
        load_questions(tmp_path, "wmdp_bio")
    with pytest.raises(ValueError, match="wmdp-chem.json not found"):
        load_questions(tmp_path, "wmdp_chem")


def test_corpora_keep_texts_longer_than_50_characters_and_need_text(tmp_path):
    long, short = "x" * (MIN_CHARS + 1), "x" * MIN_CHARS
    write(tmp_path / "cyber-forget-corpus.json", [{"text": long}, {"text": short}, {"text": long + "y"}])
    assert load_corpus(tmp_path, "cyber-forget-corpus") == [long, long + "y"]
    write(tmp_path / "bio-retain-corpus.json", [{"text": long}, {"title": "no text"}])
    with pytest.raises(ValueError, match="WMDP bio-retain-corpus item 1 has no field text"):
        load_corpus(tmp_path, "bio-retain-corpus")
    write(tmp_path / "wikitext.json", [{"text": short}])
    with pytest.raises(ValueError, match="holds no text longer than 50 characters"):
        load_corpus(tmp_path, "wikitext")


def test_the_gated_bio_corpus_comes_from_a_given_file_or_a_local_folder(tmp_path):
    text = "a hazardous paragraph long enough to be kept by the length filter of WMDP"
    given = write(tmp_path / "bio_remove_dataset.jsonl", [{"text": text, "title": "t"}])
    assert load_corpus("cais/wmdp", "bio-forget-corpus", str(given)) == [text]
    with pytest.raises(ValueError) as err:
        load_corpus("cais/wmdp", "bio-forget-corpus")
    assert str(err.value) == GATED and "--bio-corpus" in GATED
    with pytest.raises(ValueError, match="is not a file"):
        load_corpus("cais/wmdp", "bio-forget-corpus", str(tmp_path / "missing.jsonl"))
    write(tmp_path / "bio-forget-corpus.json", [{"text": text + "!"}])
    assert load_corpus(tmp_path, "bio-forget-corpus") == [text + "!"]
