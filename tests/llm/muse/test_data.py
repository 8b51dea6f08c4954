"""MUSE data from a local folder in the benchmark's layout, and fully labelled chunks."""

import json

import pytest

from simnpo.llm.data import chunk_texts
from simnpo.llm.muse.data import load_muse


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


def test_chunks_are_full_start_with_bos_and_label_every_token(muse_folder, tokenizer):
    texts = [r["text"] for r in load_muse(muse_folder, "raw", "forget")] * 5
    batch = chunk_texts(tokenizer, texts, max_tokens=16)
    eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id
    stream = [t for text in texts for t in tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]]
    assert batch.input_ids.shape == (-(-len(stream) // 15), 16) and bool(batch.attention_mask.all())
    assert (batch.input_ids[:, 0] == bos).all()
    assert (batch.labels == batch.input_ids).all()  # every token a label (the shift drops each chunk's BOS)
    body = batch.input_ids[:, 1:].reshape(-1).tolist()
    assert body[: len(stream)] == stream and body[len(stream) :] == stream[: len(body) - len(stream)]  # topped up
    (short,) = chunk_texts(tokenizer, texts[:1], max_tokens=4096)
    assert short.input_ids.tolist() == [bos] + stream[: len(short.input_ids) - 1]
    with pytest.raises(ValueError, match="at least 2 tokens"):
        chunk_texts(tokenizer, texts, max_tokens=1)
