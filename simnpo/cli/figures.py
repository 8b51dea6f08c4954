"""``simnpo weights`` and ``simnpo plot``: figures of the loss library and of run folders."""

from __future__ import annotations

from pathlib import Path

import typer

from simnpo.cli.common import app, parse_list, user_errors


@app.command()
def weights(
    lengths: str = typer.Option("5,20,80", help="Response lengths |y|, comma-separated."),
    betas: str = typer.Option("0.5,2.5", help="Inverse temperatures β, comma-separated (at most 4)."),
    ref_token_logprob: float = typer.Option(-1.0, help="NPO's reference log-likelihood per token (nats)."),
    margin: float = typer.Option(0.0, help="SimNPO's margin γ (paper convention)."),
    out: Path | None = typer.Option(None, help="Output folder (default: a new runs/weights-<time>)."),
) -> None:
    """Plot the NPO and SimNPO gradient weights against the sequence log-likelihood (PNG and PDF)."""
    from simnpo.analysis.weights import WeightsPlotConfig, write_weights_figure
    from simnpo.runs import WEIGHTS, run_dir, save_config

    with user_errors():
        config = WeightsPlotConfig(
            lengths=parse_list(lengths, int, "--lengths"),
            betas=parse_list(betas, float, "--betas"),
            ref_token_logprob=ref_token_logprob,
            margin=margin,
        )
        folder = run_dir(out, "weights")
    save_config(folder, {WEIGHTS: config}, command="weights")
    for path in write_weights_figure(config, folder):
        typer.echo(f"wrote {path}")


@app.command()
def plot(
    runs: list[Path] = typer.Argument(..., help="Run folders of simnpo markov, llm, eval, relearn or attack."),
    kind: str | None = typer.Option(None, help="Figure kinds, comma-separated (default: every one supported)."),
    out: Path | None = typer.Option(None, help="Output folder (default: a new runs/plot-<time>)."),
) -> None:
    """Draw the comparative figures the given runs support (PNG and PDF) and list what was written."""
    from simnpo.analysis.plots import select, write_figures
    from simnpo.runs import run_dir

    with user_errors():
        selected = select(runs, parse_list(kind, str, "--kind") if kind else None)
        folder = run_dir(out, "plot")
    paths = write_figures(selected, folder)
    for path in paths:
        typer.echo(f"wrote {path}")
