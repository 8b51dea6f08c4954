"""Quantization attack (Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization", ICLR 2025): an
unlearned model whose weights moved less than a quantization step falls back onto the target's quantized weights, so
a 4-bit copy of it can answer what the full-precision model forgot. Every model of a ``simnpo llm`` run (the target
and each unlearned model) is evaluated by the benchmark after 8-bit and 4-bit weight quantization.

The library is bitsandbytes, through transformers' ``BitsAndBytesConfig``: it is the paper's own (its ``load_model``
loads ``BitsAndBytesConfig(load_in_4bit=True)`` and ``load_in_8bit=True``), it is maintained, and from 0.48 on it runs
on CPU as well as on CUDA, so the built-in benchmarks are attacked here exactly as a 7B model is on GPUs. 8-bit is
LLM.int8 (row-wise absmax int8 weights; activations past ``int8_threshold`` are multiplied in 16 bits, bitsandbytes'
and the paper's default 6.0; 0 quantizes every product); 4-bit is FP4 (the paper's default) or NF4, blocks of 64
weights with one absmax scale each. The embeddings and the output layer stay in full precision, as transformers
leaves them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from simnpo.llm.benchmark import Benchmark, Plan
from simnpo.llm.models import DTYPES, check_source, load_model, load_tokenizer
from simnpo.llm.relearn import RelearnPlan, plan_from_run
from simnpo.runs import evaluation_file, read_json, write_json

FULL = "full"  # the condition of the model as saved, before quantization
CHANGED = "changed_weights"  # the share of quantized weights that differ from the target's at a precision
FOUR_BIT_TYPES = ("fp4", "nf4")
FOUR_BIT_BLOCK = 64  # weights per absmax scale in bitsandbytes' 4-bit formats


@dataclass(frozen=True)
class QuantizeConfig:
    bits: tuple[int, ...] = (8, 4)
    four_bit_type: str = "fp4"  # the paper's: BitsAndBytesConfig(load_in_4bit=True) defaults to FP4
    int8_threshold: float = 6.0  # LLM.int8's outlier threshold (bitsandbytes' default)
    compute_dtype: str = "float32"  # the dtype the quantized layers compute in (a name of models.DTYPES)

    def __post_init__(self) -> None:
        if not self.bits or any(b not in (4, 8) for b in self.bits):
            raise ValueError(f"bitsandbytes quantizes weights to 4 or 8 bits; --bits got {list(self.bits)}")
        if self.four_bit_type not in FOUR_BIT_TYPES:
            raise ValueError(f"--four-bit-type must be fp4 or nf4, got {self.four_bit_type!r}")
        if not self.int8_threshold >= 0:
            raise ValueError(f"--int8-threshold must be >= 0, got {self.int8_threshold}")
        if self.compute_dtype not in DTYPES or self.compute_dtype == "auto":
            raise ValueError(f"--compute-dtype must be float32, bfloat16 or float16, got {self.compute_dtype!r}")

    def conditions(self) -> list[tuple[str, int | None]]:
        """The attack's conditions in order, (name, bits): the saved model (``full``, None), then each quantization
        (``int8``, ``fp4``/``nf4``)."""
        return [(FULL, None)] + [(precision_name(bits, self), bits) for bits in self.bits]

    def precisions(self) -> list[str]:
        return [name for name, _ in self.conditions()]


def precision_name(bits: int, config: QuantizeConfig) -> str:
    return "int8" if bits == 8 else config.four_bit_type


def require_bitsandbytes() -> None:
    # bitsandbytes logs its optional kernels that it did not load, and LLM.int8 on CPU says at every product that it
    # casts float32 inputs to float16 (what it is meant to do): not the user's concern
    for name in ("bitsandbytes", "kernels"):  # kernels: the hub's optional kernels bitsandbytes looks for
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ValueError("the quantization attack needs bitsandbytes: pip install 'simnpo[quantize]'") from None


def bitsandbytes_config(bits: int, config: QuantizeConfig):
    """transformers' ``BitsAndBytesConfig`` for ``bits``."""
    from transformers import BitsAndBytesConfig

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=config.int8_threshold)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=config.four_bit_type, bnb_4bit_compute_dtype=DTYPES[config.compute_dtype]
    )


def load_quantized(folder: str | Path, bits: int, config: QuantizeConfig, device: str):
    """The causal LM saved in ``folder``, its linear layers quantized to ``bits`` on ``device``, in eval mode."""
    from transformers import AutoModelForCausalLM

    require_bitsandbytes()
    check_source(folder, "model")
    if bits == 4:
        check_block_widths(folder)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantiz.*")
        model = AutoModelForCausalLM.from_pretrained(
            str(folder),
            quantization_config=bitsandbytes_config(bits, config),
            dtype=DTYPES[config.compute_dtype],
            device_map={"": device},
        )
    return model.eval()


def check_block_widths(folder: str | Path) -> None:
    """4-bit blocks of 64 weights must lie within a row (bitsandbytes' CPU kernels mis-scale blocks that span rows):
    every quantized layer's input width a multiple of 64, as in every released LLM."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(folder))
    widths = {name: getattr(config, name, None) for name in ("hidden_size", "intermediate_size")}
    narrow = {name: w for name, w in widths.items() if w is not None and w % FOUR_BIT_BLOCK}
    if narrow:
        name, width = next(iter(narrow.items()))
        raise ValueError(
            f"4-bit quantization needs layer widths that are multiples of {FOUR_BIT_BLOCK}; this model's {name} is "
            f"{width}: give --bits 8"
        )


def quantized_codes(weight: Tensor, bits: int | None, config: QuantizeConfig) -> Tensor:
    """The bucket bitsandbytes puts each weight of a matrix in, computed here by its definition: 8 bits, each row's
    float16 values in 127ths of the row's absmax, rounded (LLM.int8); 4 bits, each block of 64 divided by its absmax
    and rounded to the nearest of the 4-bit type's 16 levels (its index in ascending order); None, the weight."""
    if bits is None:
        return weight
    if bits == 8:
        rows = weight.half().float()
        return torch.round(rows * 127 / rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12))
    import bitsandbytes.functional as F

    levels = F.get_4bit_type(config.four_bit_type, device="cpu").float().sort().values
    blocks = weight.float().flatten().view(-1, FOUR_BIT_BLOCK)
    normalised = blocks / blocks.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)
    return torch.bucketize(normalised, (levels[1:] + levels[:-1]) / 2).view_as(weight)


def quantized_weights(folder: str | Path) -> dict[str, Path]:
    """The weights bitsandbytes quantizes in a saved model, by name -> its safetensors file: every 2-D ``.weight``
    but the embeddings and the output layer (transformers keeps those in full precision)."""
    from safetensors import safe_open

    names = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), "pt") as file:
            for name in file.keys():
                skip = "embed" in name or "lm_head" in name or not name.endswith(".weight")
                if not skip and len(file.get_slice(name).get_shape()) == 2:
                    names[name] = path
    return names


def changed_shares(target: str | Path, model: str | Path, config: QuantizeConfig) -> dict[str, float | None]:
    """Per condition of ``config``, the share of the quantized weights whose bucket (``quantized_codes``; in full
    precision, the value) differs between ``model`` and the ``target`` it was unlearned from: Zhang et al.'s
    diagnosis, an update smaller than half a quantization step leaves the weight in the target's bucket (only the
    scale moves, by the update of the row's or block's largest weight). Each weight is read once; None when the
    folders share no such weights."""
    from safetensors import safe_open

    ours, theirs = quantized_weights(model), quantized_weights(target)
    changed = dict.fromkeys(config.precisions(), 0)
    total = 0
    for name in ours.keys() & theirs.keys():
        with safe_open(str(ours[name]), "pt") as mine, safe_open(str(theirs[name]), "pt") as original:
            a, b = (f.get_tensor(name).float() for f in (mine, original))
        for precision, bits in config.conditions():
            changed[precision] += int((quantized_codes(a, bits, config) != quantized_codes(b, bits, config)).sum())
        total += a.numel()
    return {precision: count / total if total else None for precision, count in changed.items()}


def attack_model(
    bench: Benchmark,
    plan: Plan,
    reference: Any,
    source: str | Path,
    before: dict | None,
    config: QuantizeConfig,
    folder: Path,
    device: str,
    advance: Callable | None = None,
) -> dict[str, dict]:
    """One model's summaries per precision: ``before`` (its full-precision results as its run wrote them; evaluated
    here when None) and each quantization, written to ``folder/<precision>/<results file>``. A precision already
    written is read back (a killed attack resumes)."""
    tokenizer = load_tokenizer(source)
    summaries = {}
    for precision, bits in config.conditions():
        path = folder / precision / bench.results_file
        if precision == FULL and before is not None:
            results = before
        elif path.is_file():
            results = read_json(path)
        else:
            model = load_model(source, device) if bits is None else load_quantized(source, bits, config, device)
            results = bench.evaluate(model, tokenizer, plan, reference)
            del model
            write_json(path, results)
        summaries[precision] = bench.summary(results)
        if advance is not None:
            advance(1)
    return summaries


def run_models(
    bench: Benchmark, run: Path, relearn_plan: RelearnPlan, progress: Callable
) -> list[tuple[str, Path, dict | None]]:
    """The models of a ``simnpo llm`` run folder (planned by ``check_run``) to attack: its starting model (the
    target) and each finished unlearned model, with the full-precision results the run wrote for it (the target's,
    and each method's last evaluation, taken after its final epoch), or None where the run has none."""
    plan = relearn_plan.plan
    label, source = plan.models[-1]
    if plan.build is not None and isinstance(source, Path):
        plan.build(source.name, progress)  # a built-in model: read from its cache, made again only if it is gone
    start = run / label / bench.results_file
    models = [(label, source, read_json(start) if start.is_file() else None)]
    for method, folder, trainer in relearn_plan.targets:
        last = evaluation_file(run / method, trainer.epochs, bench.results_file)
        models.append((method, folder, read_json(last) if last.is_file() else None))
    return models


def check_run(bench: Benchmark, run: Path, config: QuantizeConfig) -> tuple[RelearnPlan, Any]:
    """Before anything is written: the run folder holds finished unlearned models, and 4-bit can quantize them.
    Returns the run's plan (``relearn.plan_from_run``: its data, settings, reference and unlearned models) and its
    evaluation settings."""
    relearn_plan, settings = plan_from_run(bench, run, {})
    if 4 in config.bits:
        check_block_widths(relearn_plan.targets[0][1])  # the unlearned models share the target's architecture
    return relearn_plan, settings


def quantize_run(
    bench: Benchmark,
    run: Path,
    relearn_plan: RelearnPlan,
    config: QuantizeConfig,
    folder: Path,
    device: str,
    progress: Callable,
) -> dict:
    """Attack every model of a ``simnpo llm`` run (``run_models``), writing each evaluation under
    ``folder/<model>/<precision>/``; returns the report (``quantize_report``)."""
    plan, reference = relearn_plan.plan, relearn_plan.reference
    models = run_models(bench, run, relearn_plan, progress)
    advance = progress("quantize and evaluate", len(models) * len(config.precisions()))
    summaries = {
        label: attack_model(bench, plan, reference, source, before, config, folder / label, device, advance)
        for label, source, before in models
    }
    target = models[0][1]
    for label, source, _ in models[1:]:  # why an attack brings back little or much: how many weights moved
        for precision, share in changed_shares(target, source, config).items():
            summaries[label][precision][CHANGED] = share
    return quantize_report(bench, config, summaries)


def quantize_report(bench: Benchmark, config: QuantizeConfig, models: dict[str, dict[str, dict]]) -> dict:
    """What the attack found, for tables and figures: per model (the target first) its summary per precision, and
    which summary keys are the forget metrics, the utility and the knowledge whose return is measured."""
    return {
        "bench": bench.name,
        "attack": "quantize",
        "conditions": config.precisions(),
        "columns": [[key, label] for key, label, _ in bench.table.relearn_columns],
        "utility": list(bench.table.utility[:2]) if bench.table.utility else None,
        "knowledge": bench.table.knowledge,
        "models": models,
    }
