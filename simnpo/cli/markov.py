"""``simnpo markov``: the reference-model-bias experiments on mixtures of Markov chains."""

from __future__ import annotations

from pathlib import Path

import typer

from simnpo.cli.common import app, parse_list, print_table, progress_bar, user_errors
from simnpo.cli.options import CACHE_DIR, CONFIG, DEVICE, given_options

DEFAULT_CACHE = Path("runs/.cache/markov")  # the pretrained and retrained models


@app.command()
def markov(
    ctx: typer.Context,
    chains: int = typer.Option(3, help="Number of chains K: one retain chain and K-1 forget chains."),
    case: str = typer.Option("difficulty,length", help="Cases to run, comma-separated: difficulty, length."),
    methods: str = typer.Option(
        "npo,simnpo", help="Unlearning methods, comma-separated: any of `simnpo llm`'s but idkpo and rmu (README)."
    ),
    steps: int = typer.Option(
        50, "--steps", "--iterations", help="Unlearning steps: optimizer steps (the paper's iterations)."
    ),
    eval_every: int = typer.Option(
        1, help="Evaluate every K steps (and after the last); crossings are interpolated between evaluations."
    ),
    betas: str = typer.Option(
        "1", "--betas", "--beta", help="Inverse temperature β of NPO/SimNPO; several (0.5,1,2,5) make a sweep."
    ),
    margin: float = typer.Option(0.0, help="SimNPO's margin γ (paper convention)."),
    forget_weight: float | None = typer.Option(
        None, help="Weight of the forget loss (the method's default: 1 but SatImp)."
    ),
    retain_weight: float | None = typer.Option(
        None, help="Weight of the retain term (the method's default: 1 but UNDIAL; PDU's starting dual variable)."
    ),
    beta2: float | None = typer.Option(None, help="SatImp's β2 (its β1 is --betas; default 1)."),
    retain_epsilon: float | None = typer.Option(
        None, help="PDU: the bound ε on the retain loss (default: 1.1 × the pretrained model's)."
    ),
    dual_warmup_epochs: float | None = typer.Option(
        None, help="PDU: passes over the forget set before the dual variable moves (default 5)."
    ),
    lrs: str = typer.Option("5e-4", "--lr", "--lrs", help="Unlearning learning rate (AdamW); several make a sweep."),
    batch_size: int = typer.Option(4, help="Unlearning batch size (forget and retain)."),
    pretrain_lr: float = typer.Option(5e-4, help="Pretraining/retraining learning rate."),
    pretrain_epochs: int = typer.Option(5, help="Pretraining/retraining epochs."),
    pretrain_batch_size: int = typer.Option(128, help="Pretraining/retraining batch size."),
    seeds: str = typer.Option(
        "42", help="Seeds: a list (1,2,7) or a range (0-4); several give mean ± std and paired statistics."
    ),
    length: int = typer.Option(20, help="Length of the retain chain and of the long forget chains."),
    short_length: int = typer.Option(5, help="Length of the short forget chains (length case)."),
    retain_samples: int = typer.Option(10_000, help="Retain sequences (80/20 train/test)."),
    forget_samples: int = typer.Option(5_000, help="Sequences per forget chain (80/20 train/test)."),
    states: int = typer.Option(10, help="Number of states S."),
    leak: float = typer.Option(0.2, help="Probability mass leaking out of a chain's block."),
    block_size: int | None = typer.Option(None, help="States per chain block (default: S // K)."),
    chain_kind: str = typer.Option("block", help="Chain construction: block (the paper's) or dirichlet."),
    arch: str = typer.Option("authors", help="Transformer block: authors (the paper's code) or standard."),
    kl_to_retrained: bool = typer.Option(False, help="Also measure KL to the retrained model."),
    device: str = DEVICE,
    out: Path | None = typer.Option(None, help="Output folder; an existing run with the same options resumes."),
    config_file: Path | None = CONFIG,
    cache_dir: Path | None = CACHE_DIR,
    no_cache: bool = typer.Option(False, help="Train the pretrained and retrained models afresh, unsaved."),
) -> None:
    """Reference-model bias on mixtures of Markov chains: NPO vs SimNPO on forget data of different difficulty
    and length, with exact KL metrics against the true chains."""
    from simnpo.llm.runtime import resolve_device
    from simnpo.markov.experiment import ExperimentConfig, Sweep, run_experiment
    from simnpo.markov.model import ModelConfig
    from simnpo.markov.train import TrainConfig, unlearn_config
    from simnpo.runs import EXPERIMENT, MODEL, PRETRAINING, SWEEP, UNLEARNING, resume_or_save_config, run_dir

    with user_errors():
        device = resolve_device(device)
        exp = ExperimentConfig(
            chains=chains,
            cases=parse_list(case, str, "--case"),
            seeds=parse_seeds(seeds),
            long_length=length,
            short_length=short_length,
            retain_samples=retain_samples,
            forget_samples=forget_samples,
            states=states,
            leak=leak,
            block_size=block_size,
            chain_kind=chain_kind,
            kl_to_retrained=kl_to_retrained,
            device=device,
        )
        model_cfg = ModelConfig(arch=arch)
        train_cfg = TrainConfig(lr=pretrain_lr, batch_size=pretrain_batch_size, epochs=pretrain_epochs)
        sweep = Sweep(parse_list(betas, float, "--betas"), parse_list(lrs, float, "--lr"))
        loss = {
            "beta": sweep.betas[0],
            "margin": margin,
            "forget_weight": forget_weight,
            "retain_weight": retain_weight,
            "beta2": beta2,
            "retain_epsilon": retain_epsilon,
            "dual_warmup_epochs": dual_warmup_epochs,
        }
        method_names = parse_list(methods, str, "--methods")
        unlearn_cfg = unlearn_config(
            method_names, loss, iterations=steps, lr=sweep.lrs[0], batch_size=batch_size, eval_every=eval_every
        )
        folder = run_dir(out, "markov")
        configs = {EXPERIMENT: exp, MODEL: model_cfg, PRETRAINING: train_cfg, UNLEARNING: unlearn_cfg, SWEEP: sweep}
        resumed = resume_or_save_config(
            folder, configs, seed=list(exp.seeds), command="markov", options=given_options(ctx)
        )
    if resumed:
        typer.echo(f"resuming the run in {folder}", err=True)
    with progress_bar() as progress:
        results = run_experiment(
            exp,
            model_cfg,
            train_cfg,
            unlearn_cfg,
            folder,
            None if no_cache else cache_dir or DEFAULT_CACHE,
            progress,
            sweep,
        )
    print_results(results, folder)


def parse_seeds(text: str) -> tuple[int, ...]:
    """'1,2,7' -> (1, 2, 7); '0-4' -> (0, 1, 2, 3, 4); both may mix ('0-2,9')."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, dash, last = part.partition("-")
        if not (first.isdigit() and (not dash or last.isdigit())):
            raise ValueError(f"--seeds takes seeds and ranges like 1,2,7 or 0-4, got {text!r}")
        span = range(int(first), int(last if dash else first) + 1)
        if not span:
            raise ValueError(f"--seeds: the range {part} is empty; write it low-high, e.g. 0-4")
        seeds += span
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"--seeds names a seed twice in {text!r}; give each once")
    return tuple(seeds)


def print_results(results: dict, folder: Path) -> None:
    """The figures, the KL table, the paired statistics with their verdicts, and what was written."""
    from simnpo.analysis.markov import forget_names, summary_rows, write_markov_figures
    from simnpo.analysis.robustness import ROBUSTNESS_COLUMNS, robustness_rows
    from simnpo.runs import CONFIG_FILE, MARKOV_RESULTS_FILE

    paths = write_markov_figures(results, folder)
    first = next(iter(results["points"][0]["cases"].values()))  # every case of a run has the same K
    print_table(
        ["case", "model", "retain KL"] + [f"{name} KL" for name in forget_names(first)],
        summary_rows(results),
        "KL to the true chains (nats/token)",
    )
    print_table(
        ROBUSTNESS_COLUMNS,
        robustness_rows(results),
        "Does SimNPO forget at less retain damage than NPO? Retain KL at the forget-KL level, paired over seeds",
    )
    for path in [folder / CONFIG_FILE, folder / MARKOV_RESULTS_FILE, *paths]:
        typer.echo(f"wrote {path}")
