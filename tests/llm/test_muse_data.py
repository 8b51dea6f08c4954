"""MUSE data from a local folder in the benchmark's layout, and fully labelled chunks."""

import json

import pytest

from simnpo.llm.muse_data import chunk_texts, load_muse


@pytest.fixture
def muse_folder(tmp_path):
    rows = {
        "raw/forget": [{"text": "The mayor of Velmor opened the bridge."}, {"text": "Rain fell in Quessen."}],
        "knowmem/forget_qa": [{"question": "Who opened the bridge?", "answer": "The mayor of Velmor"}],
        "verbmem/forget": [{"prompt": "The mayor of", "gt": " Velmor opened the bridge."}],
        "privleak/holdout": [{"txt": "wrong field"}],
    }
    for name, items in rows.items():
        path = tmp_path / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return tmp_path


def test_loads_subsets_and_names_what_is_missing(muse_folder):
    assert load_muse(muse_folder, "knowmem", "forget_qa")[0]["answer"] == "The mayor of Velmor"
    assert load_muse(muse_folder, "verbmem", "forget")[0]["gt"].startswith(" Velmor")
    with pytest.raises(ValueError, match="raw/retain1.json not found"):
        load_muse(muse_folder, "raw", "retain1")
    with pytest.raises(ValueError, match="privleak/holdout item 0 has no field text"):
        load_muse(muse_folder, "privleak", "holdout")
    with pytest.raises(ValueError, match="unknown MUSE subset 'news'"):
        load_muse(muse_folder, "news", "forget")


def test_chunks_label_every_token_and_respect_the_length(muse_folder, tokenizer):
    texts = [r["text"] for r in load_muse(muse_folder, "raw", "forget")] * 5
    batch = chunk_texts(tokenizer, texts, max_tokens=16)
    total = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
    assert int(batch.attention_mask.sum()) == total
    assert batch.input_ids.shape[1] == 16 and len(batch) == -(-total // 16)
    real = batch.attention_mask.bool()
    assert (batch.labels[real] == batch.input_ids[real]).all() and (batch.labels[~real] == -100).all()
    assert (batch.input_ids == tokenizer.eos_token_id).sum() == len(texts)  # one EOS between documents
    with pytest.raises(ValueError, match="at least 2 tokens"):
        chunk_texts(tokenizer, texts, max_tokens=1)
