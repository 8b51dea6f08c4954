"""GGUF checkpoints as models: the file is recognised, converted once into a folder keyed by its SHA-256, and every
bad input is one line with exit code 2 and nothing written. (The conversion of a real checkpoint, SmolLM2, is tested
in test_real_model.py.)"""

import pytest
from typer.testing import CliRunner

from simnpo.cli import app
from simnpo.llm import gguf as G

gguf_package = pytest.importorskip("gguf", reason="the gguf package is not installed")


def unknown_architecture(path):
    """A well-formed GGUF file whose architecture transformers has no loader for."""
    import numpy as np

    writer = gguf_package.GGUFWriter(str(path), "notallama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_model_is_gguf_by_its_suffix_or_a_gguf_file_option(tmp_path):
    assert G.is_gguf("models/SmolLM2.Q4_1.GGUF") and G.is_gguf("some-folder", "model.gguf")
    assert not G.is_gguf("meta-llama/Llama-2-7b-chat-hf") and not G.is_gguf(None)
    made = unknown_architecture(tmp_path / "m.gguf")
    assert G.gguf_path(tmp_path, "m.gguf") == made == G.gguf_path(made, None)


def run(args):
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize("command", ["eval", "llm"])
def test_a_file_that_is_not_gguf_is_one_line_and_writes_nothing(tmp_path, command):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip file, not a GGUF one")
    result = run([command, "--bench", "tofu", "--model", str(fake), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {fake} is not a GGUF file (it does not start with the bytes 'GGUF')"
    ]
    assert not (tmp_path / "out").exists()


def test_an_architecture_transformers_cannot_load_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(G, "DEFAULT_GGUF_CACHE", tmp_path / "cache")
    model = unknown_architecture(tmp_path / "odd.gguf")
    result = run(["eval", "--bench", "tofu", "--model", str(model), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert (
        lines[-1].startswith("error: transformers cannot load odd.gguf as a causal LM (") and "notallama" in lines[-1]
    )
    assert [line for line in lines if line.startswith("error")] == lines[-1:]
    assert not (tmp_path / "out").exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # no converted folder, not even a partial one


def test_the_gguf_package_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(G, "DEFAULT_GGUF_CACHE", tmp_path / "cache")
    real = G.importlib.util.find_spec
    monkeypatch.setattr(G.importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    model = unknown_architecture(tmp_path / "m.gguf")
    result = run(["llm", "--bench", "tofu", "--model", str(model), "--dry-run"])
    assert result.exit_code == 2
    assert (
        result.output.strip().splitlines()[-1]
        == "error: reading m.gguf needs the gguf package: pip install 'simnpo[gguf]'"
    )


def test_gguf_file_needs_a_model(tmp_path):
    for args in (["eval", "--bench", "tofu"], ["relearn", str(tmp_path)]):
        result = run([*args, "--gguf-file", "m.gguf"])
        assert result.exit_code == 2
        assert "--gguf-file needs --model" in result.output.strip().splitlines()[-1]


def test_a_missing_gguf_file_is_named(tmp_path):
    result = run(["eval", "--bench", "tofu", "--model", str(tmp_path), "--gguf-file", "absent.gguf"])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == f"error: GGUF file {tmp_path / 'absent.gguf'} does not exist; give the path of a .gguf file"
    )


def test_a_files_hash_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import hashlib
    import os

    model = unknown_architecture(tmp_path / "m.gguf")
    digest = G.file_sha256(model, tmp_path / "cache")
    assert digest == hashlib.sha256(model.read_bytes()).hexdigest()
    monkeypatch.setattr(G.hashlib, "sha256", lambda: pytest.fail("hashed again"))
    assert G.file_sha256(model, tmp_path / "cache") == digest  # remembered by path, size and modification time
    os.utime(model, ns=(0, 0))
    with pytest.raises(pytest.fail.Exception, match="hashed again"):
        G.file_sha256(model, tmp_path / "cache")
