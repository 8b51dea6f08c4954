"""The options several commands share, each declared once with one name, default and help (docs/cli.md; checked
by tests/cli/test_vocabulary.py), the help panels that group a command's options, and ``--config`` files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from simnpo.cli.common import user_errors

CONFIG_HELP = (
    "Option values from a YAML or TOML file (keys named as the options, e.g. lr: 1e-4) or a run folder's "
    "config.json (rerun it); options on the command line win."
)
NOT_FROM_CONFIG = ("config_file", "out")  # a config file says what to run, not where its results go


def config_values(ctx: typer.Context, path: Path) -> dict:
    """The option values a config file sets for the command of ``ctx``: a run's config.json gives the options that
    run was given (``given_options``), a YAML or TOML file its keys; an unknown key is one line naming the closest
    option."""
    from simnpo.llm.presets import check_keys
    from simnpo.runs import read_json

    if not path.is_file():
        raise ValueError(f"config file {path} not found")
    command = " ".join(ctx.command_path.split()[1:])
    if path.suffix == ".json":
        values = read_json(path)
        if "configs" in values:  # a run folder's config.json
            if values.get("command") != command or "options" not in values:
                made = f"`simnpo {values['command']}`" if values.get("command") else "another command"
                raise ValueError(f"{path} is the config of a run of {made}; give it to `simnpo {command} --config`")
            values = values["options"]
    elif path.suffix in (".yaml", ".yml"):
        import yaml

        values = yaml.safe_load(path.read_text())
    elif path.suffix == ".toml":
        values = _toml(path)
    else:
        raise ValueError(f"config file {path} must be YAML (.yaml), TOML (.toml) or a run's config.json")
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must map option names to values")
    # a key may be any of an option's names (markov's --lr sets lrs, --iterations steps)
    names = {opt.lstrip("-").replace("-", "_"): p.name for p in ctx.command.params for opt in p.opts}
    values = {names.get(k, k): v for k, v in ((str(k).replace("-", "_"), v) for k, v in values.items())}
    options = [p.name for p in ctx.command.params if p.name not in NOT_FROM_CONFIG]
    check_keys([k for k in values if k not in NOT_FROM_CONFIG], options, f"config file {path}")
    return {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in values.items() if k != "config_file"}


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    with path.open("rb") as file:
        return tomllib.load(file)


def _read_config(ctx: typer.Context, param, value: Path | None):
    """``--config``: read first (eager), its values become the defaults of every other option."""
    if value is not None and not ctx.resilient_parsing:
        with user_errors():
            ctx.default_map = {**(ctx.default_map or {}), **config_values(ctx, Path(value))}
    return value


CONFIG = typer.Option(
    None, "--config", help=CONFIG_HELP, is_eager=True, callback=_read_config, rich_help_panel="Output"
)
# The options several commands share, each declared once: the same name, default and help everywhere (docs/cli.md)
DEVICE = typer.Option("auto", help="auto (the GPU when there is one), cpu or cuda.", rich_help_panel="Hardware")
TORCH_DTYPE = typer.Option(
    "float32",
    help="dtype of the loaded weights: float32, bfloat16, float16 or auto (the checkpoint's).",
    rich_help_panel="Hardware",
)
PAD_TOKEN = typer.Option(
    None, help="Set a missing pad token: eos or a token of the vocabulary.", rich_help_panel="Benchmark"
)
DATA = typer.Option(
    "builtin", help="Data: builtin, a local folder of the benchmark's files, or a hub id.", rich_help_panel="Benchmark"
)
BENCH = typer.Option("tofu", help="Benchmark: tofu, muse or wmdp.", rich_help_panel="Benchmark")
MAX_NEW_TOKENS = typer.Option(
    200,
    help="TOFU: new tokens per generated answer in evaluations (open-unlearning's 200).",
    rich_help_panel="Evaluation",
)
FINETUNE_EPOCHS = typer.Option(
    None,
    help="Epochs of the built-in models' fine-tuning (default: the benchmark's: mini-TOFU 30, mini-MUSE 50, "
    "mini-WMDP 80).",
    rich_help_panel="Benchmark",
)
CACHE_DIR = typer.Option(
    None,
    help="Cache of the built-in data and models (default: runs/.cache/BENCH, or runs/.cache/markov).",
    rich_help_panel="Output",
)
SPLIT = typer.Option(
    None, help="TOFU forget split: forget01, forget05 or forget10 (default: forget10, or the preset's)."
)
CORPUS = typer.Option(
    None, help="MUSE corpus: news or books (default: news, or the preset's); sets the published retrain AUC."
)
RETRAIN_AUC = typer.Option(None, help="MUSE: the retrain model's PrivLeak AUC (default: published).")
RETAIN_RESULTS = typer.Option(
    None, help="TOFU: the retain model's TOFU_EVAL.json (ours or open-unlearning's), forget quality's reference."
)
PROTOCOL = typer.Option(
    None,
    help="TOFU: open-unlearning (the default; its numbers: all items, 200 new tokens, pad-valued tokens hidden from "
    "attention as its collator hides them), attend-all (the same, every token attended) or original (TOFU's code: "
    "300 items).",
)
TEMPLATE = typer.Option(
    None, help="TOFU prompt template: llama2, phi, chat, chat-system or llama3 (default: detected from the model)."
)
TASKS = typer.Option(
    None,
    help="WMDP tasks, comma-separated: wmdp_bio, wmdp_cyber, wmdp_chem, mmlu (default: all but Chem; built-in: Bio, "
    "MMLU).",
)
LIMIT = typer.Option(None, help="WMDP: score only the first N questions of each task (a quick look, printed as such).")
GGUF_FILE = typer.Option(
    None, help="A GGUF file in the --model folder (or hub repository), converted once to a cached model folder."
)
MIA = typer.Option(
    None, help="TOFU and MUSE: attacks besides PrivLeak's Min-K%: loss, zlib, min_k, min_k++, gradnorm, reference."
)
MIA_REFERENCE = typer.Option(
    None, help="TOFU and MUSE: the reference attack's model (a folder or hub id with the same tokenizer)."
)
EVAL_BATCH_SIZE = typer.Option(
    None, help="Sequences per scoring batch in evaluations (default: the benchmark's: TOFU 64, MUSE 32, WMDP 16)."
)
GENERATION_BATCH_SIZE = typer.Option(
    None, help="TOFU: prompts per generation batch in evaluations (default 128; finished rows leave the batch)."
)
DRY_RUN = typer.Option(
    False,
    "--dry-run",
    help="Print the fully resolved configuration as JSON and exit (loads no model, writes nothing).",
    rich_help_panel="Output",
)


PANELS = {  # eval and llm: each command's options in these panels, in this order
    "Benchmark": (
        "bench", "model", "gguf_file", "data", "split", "corpus", "retrain_auc", "tasks", "limit", "forget_corpora",
        "retain_corpus", "bio_corpus", "max_forget_chunks", "template", "pad_token", "finetune_epochs",
        "retain_results", "protocol",
    ),
    "Method and loss": (
        "methods", "preset", "beta", "margin", "margin_convention", "forget_weight", "retain_weight", "kl_positions",
        "steering", "beta2", "ignore_first_answer_tokens", "undial_positions", "flattening_positions",
        "retain_epsilon", "retain_tolerance", "dual_step_size", "dual_update", "dual_warmup_epochs", "rmu_layer",
        "rmu_params",
    ),
    "Optimisation": (
        "lr", "epochs", "batch_size", "per_device_batch_size", "weight_decay", "warmup_epochs", "schedule",
        "optimizer", "lora_rank", "max_length", "seed", "gradient_checkpointing", "bf16",
    ),
    "Evaluation": (
        "eval_every", "mia", "mia_reference", "max_new_tokens", "eval_batch_size", "generation_batch_size",
    ),
    "Hardware": ("device", "torch_dtype"),
    "Output": ("report_to", "dry_run", "out", "config_file", "cache_dir"),
}  # fmt: skip


def in_panels(command: Callable, panels: dict[str, tuple[str, ...]]) -> Callable:
    """Group a command's options into help panels (``panels``: panel -> option names), in a workflow's order."""
    import inspect

    for name, parameter in inspect.signature(command).parameters.items():
        for panel, names in panels.items():
            if name in names and hasattr(parameter.default, "rich_help_panel"):
                parameter.default.rich_help_panel = panel
    return command


def given_options(ctx: typer.Context) -> dict:
    """The options this command was given, on its command line or by ``--config``: what config.json keeps to rerun it
    (``simnpo COMMAND --config RUN/config.json``)."""
    given = ("COMMANDLINE", "DEFAULT_MAP", "ENVIRONMENT")  # by name: typer may carry its own copy of click
    source = ctx.get_parameter_source
    return {
        name: value
        for name, value in ctx.params.items()
        if name not in NOT_FROM_CONFIG and getattr(source(name), "name", "") in given
    }
