"""``simnpo markov``: the reference-model-bias experiments on mixtures of Markov chains."""

from __future__ import annotations

from pathlib import Path

import typer

from simnpo.cli.common import app, parse_list, print_table, progress_bar, user_errors


@app.command()
def markov(
    chains: int = typer.Option(3, help="Number of chains K: one retain chain and K-1 forget chains."),
    case: str = typer.Option("difficulty,length", help="Cases to run, comma-separated: difficulty, length."),
    methods: str = typer.Option("npo,simnpo", help="Unlearning methods, comma-separated (see README)."),
    iterations: int = typer.Option(50, help="Unlearning iterations, each evaluated."),
    beta: float | None = typer.Option(None, help="Inverse temperature β of NPO/SimNPO (1, the published setting)."),
    margin: float = typer.Option(0.0, help="SimNPO's margin γ (paper convention)."),
    forget_weight: float = typer.Option(1.0, help="Weight of the forget loss."),
    retain_weight: float = typer.Option(1.0, help="Weight of the retain term (methods with _nll/_kl)."),
    lr: float = typer.Option(5e-4, help="Unlearning learning rate (AdamW)."),
    batch_size: int = typer.Option(4, help="Unlearning batch size (forget and retain)."),
    pretrain_lr: float = typer.Option(5e-4, help="Pretraining/retraining learning rate."),
    pretrain_epochs: int = typer.Option(5, help="Pretraining/retraining epochs."),
    pretrain_batch_size: int = typer.Option(128, help="Pretraining/retraining batch size."),
    seeds: str = typer.Option("42", help="Seeds, comma-separated; several give mean ± std."),
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
    device: str = typer.Option("cpu", help="Torch device, e.g. cpu or cuda."),
    out: Path | None = typer.Option(None, help="Output folder; an existing run with the same options resumes."),
    cache_dir: Path = typer.Option(Path("runs/.cache/markov"), help="Cache of pretrained/retrained models."),
    no_cache: bool = typer.Option(False, help="Train the pretrained and retrained models afresh, unsaved."),
) -> None:
    """Reference-model bias on mixtures of Markov chains: NPO vs SimNPO on forget data of different difficulty
    and length, with exact KL metrics against the true chains."""
    import torch

    from simnpo.markov.experiment import ExperimentConfig, run_experiment
    from simnpo.markov.model import ModelConfig
    from simnpo.markov.train import TrainConfig, unlearn_config
    from simnpo.runs import EXPERIMENT, MODEL, PRETRAINING, UNLEARNING, resume_or_save_config, run_dir

    with user_errors():
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
        exp = ExperimentConfig(
            chains=chains,
            cases=parse_list(case, str, "--case"),
            seeds=parse_list(seeds, int, "--seeds"),
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
        loss = {"beta": beta, "margin": margin, "forget_weight": forget_weight, "retain_weight": retain_weight}
        method_names = parse_list(methods, str, "--methods")
        unlearn_cfg = unlearn_config(method_names, loss, iterations=iterations, lr=lr, batch_size=batch_size)
        folder = run_dir(out, "markov")
        configs = {EXPERIMENT: exp, MODEL: model_cfg, PRETRAINING: train_cfg, UNLEARNING: unlearn_cfg}
        resumed = resume_or_save_config(folder, configs, seed=list(exp.seeds), command="markov")
    if resumed:
        typer.echo(f"resuming the run in {folder}", err=True)
    with progress_bar() as progress:
        results = run_experiment(
            exp, model_cfg, train_cfg, unlearn_cfg, folder, None if no_cache else cache_dir, progress
        )
    print_results(results, folder)


def print_results(results: dict, folder: Path) -> None:
    """The figures, the KL table, a verdict line per finding of the paper, and what was written."""
    from simnpo.analysis.markov import findings, summary_rows, write_markov_figures
    from simnpo.runs import CONFIG_FILE, MARKOV_RESULTS_FILE

    paths = write_markov_figures(results, folder)
    print_table(
        ["case", "model", "retain KL"] + [f"{n} KL" for n in results_forget_names(results)],
        summary_rows(results),
        "KL to the true chains (nats/token)",
    )
    for finding in findings(results):
        verdict = "holds" if finding["holds"] else "does NOT hold"
        costs = ", ".join(f"{m} {v:.3f}" if v is not None else f"{m} never" for m, v in finding["retain_kl"].items())
        typer.echo(f"finding {verdict}: {finding['claim']} (retain KL: {costs})")
    for path in [folder / CONFIG_FILE, folder / MARKOV_RESULTS_FILE, *paths]:
        typer.echo(f"wrote {path}")


def results_forget_names(results: dict) -> list[str]:
    """The forget-chain names of the case with the most chains (every case of a run has the same K)."""
    first = next(iter(results["cases"].values()))
    return [c["name"] for c in first["chains"][1:]]
