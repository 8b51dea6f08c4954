"""The reference-model-bias experiments: for each case and seed, pretrain and retrain (cached), then unlearn with
every method at every point (β, lr) of a sweep, evaluating the exact KL metrics along the way.

Each finished (case, seed, point, method) is written atomically to ``parts/`` of the run folder, so a killed run
resumes where it stopped; ``results.json`` aggregates the parts per point with every seed's values, their mean and
standard deviation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from simnpo.losses import Read, method_reads, npo_weights, sequence_logprobs, simnpo_weights
from simnpo.markov.data import CASES, DataConfig, case_chains, sample_data, split_tokens
from simnpo.markov.metrics import exact_chain_kl, kl_to_chain, kl_to_model
from simnpo.markov.model import MODEL_REVISION, ModelConfig
from simnpo.markov.train import (
    PUBLISHED_BETA,
    TrainConfig,
    UnlearnConfig,
    cached_training,
    forward_all,
    new_model,
    steps_per_training,
    unlearn,
)
from simnpo.runs import MARKOV_RESULTS_FILE, cache_key, read_json, write_json

TRACKED_EXAMPLES = 8  # per forget chain, whose individual gradient weights are kept for every iteration


@dataclass(frozen=True)
class ExperimentConfig:
    """Which runs to make. Chains follow ``case_chains``; the rest of the mixture is in ``DataConfig`` fields."""

    chains: int = 3
    cases: tuple[str, ...] = CASES
    seeds: tuple[int, ...] = (42,)
    long_length: int = 20
    short_length: int = 5
    retain_samples: int = 10_000
    forget_samples: int = 5_000
    states: int = 10
    leak: float = 0.2
    block_size: int | None = None
    chain_kind: str = "block"
    kl_to_retrained: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.cases or any(c not in CASES for c in self.cases):
            raise ValueError(f"cases must be among {', '.join(CASES)}, got {', '.join(self.cases) or 'none'}")
        if not self.seeds:
            raise ValueError("give at least one seed")
        for case in self.cases:
            self.data_config(case)  # validates chains, lengths, sizes and the state budget

    def data_config(self, case: str) -> DataConfig:
        chains = case_chains(
            case, self.chains, self.long_length, self.short_length, self.retain_samples, self.forget_samples
        )
        return DataConfig(chains, self.states, self.leak, self.block_size, self.chain_kind)


Progress = Callable[[str, int], Callable[[int], None]]  # (description, total) -> advance(n)


def _no_progress(description: str, total: int) -> Callable[[int], None]:
    return lambda n: None


@dataclass(frozen=True)
class Sweep:
    """The unlearning settings swept: every β with every learning rate (each replaces the UnlearnConfig's own)."""

    betas: tuple[float, ...] = (PUBLISHED_BETA,)
    lrs: tuple[float, ...] = (5e-4,)

    def __post_init__(self) -> None:
        if not self.betas or not all(math.isfinite(b) and b > 0 for b in self.betas):
            raise ValueError(f"every β must be a finite number > 0, got {', '.join(map(str, self.betas)) or 'none'}")
        if not self.lrs or not all(math.isfinite(lr) and lr > 0 for lr in self.lrs):
            raise ValueError(f"every lr must be a finite number > 0, got {', '.join(map(str, self.lrs)) or 'none'}")
        if len(set(self.betas)) < len(self.betas) or len(set(self.lrs)) < len(self.lrs):
            raise ValueError("a β or lr is given twice; give each value once")

    def points(self) -> list[tuple[float, float]]:
        return [(beta, lr) for beta in self.betas for lr in self.lrs]


def own_sweep(sweep: Sweep | None, unlearn_cfg: UnlearnConfig) -> Sweep:
    """``sweep``, or the one point of the UnlearnConfig's own β and lr."""
    return sweep or Sweep((unlearn_cfg.losses[0].beta,), (unlearn_cfg.lr,))


def sweep_point(unlearn_cfg: UnlearnConfig, beta: float, lr: float) -> UnlearnConfig:
    """The unlearning configuration of one sweep point: every method at β ``beta``, learning rate ``lr``."""
    return replace(unlearn_cfg, lr=lr, losses=tuple(replace(loss, beta=beta) for loss in unlearn_cfg.losses))


def point_folder(beta: float, lr: float) -> str:
    return f"beta{beta:g}_lr{lr:g}"


def run_case_seed(
    exp: ExperimentConfig,
    case: str,
    seed: int,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    unlearn_cfg: UnlearnConfig,
    folder: Path,
    cache: Path | None,
    progress: Progress = _no_progress,
    sweep: Sweep | None = None,
) -> None:
    """Everything of one (case, seed): reference points, then one part file per (sweep point, method) not yet
    written; the pretrained and retrained models are made once for all of them."""
    parts = folder / "parts" / case / f"seed{seed}"
    points = own_sweep(sweep, unlearn_cfg).points()
    todo = [
        (beta, lr, m)
        for beta, lr in points
        for m in unlearn_cfg.methods
        if not (parts / point_folder(beta, lr) / f"{m}.json").is_file()
    ]
    if not todo and (parts / "reference.json").is_file():
        return
    data_cfg = exp.data_config(case)
    data = sample_data(data_cfg, seed)
    label = f"{case} seed {seed}"
    pretrained, retrained = _pretrain_and_retrain(
        data, data_cfg, model_cfg, train_cfg, exp, cache, progress, seed, label
    )
    device = torch.device(exp.device)
    tests = [split_tokens(data, "test", [k]).to(device) for k in range(len(data))]  # one per chain, at its length
    scorer = _Scorer(
        data, tests, [forward_all(pretrained, t) for t in tests], [forward_all(retrained, t) for t in tests]
    )
    if not (parts / "reference.json").is_file():
        write_json(parts / "reference.json", scorer.reference())
    ref_logps = [sequence_logprobs(lg, t.labels)[0] for lg, t in zip(scorer.pretrained_logits, tests)]
    forget, retain = split_tokens(data, "train", list(range(1, len(data)))), split_tokens(data, "train", [0])
    # NPO's reference log-probabilities of the forget set, shared by every cell of the sweep
    ref_forget = None
    if any(Read("forget", "sequence", reference=True) in method_reads(m) for m in unlearn_cfg.methods):
        ref_forget = sequence_logprobs(forward_all(pretrained, forget), forget.labels.to(device))[0]
    advance = progress(f"{label}: unlearn ({len(todo)} runs)", len(todo) * unlearn_cfg.iterations)
    for beta, lr, method in todo:
        cfg = sweep_point(unlearn_cfg, beta, lr)
        record = _new_record(scorer.names, exp.kl_to_retrained)
        evaluate = functools.partial(
            _record_point, record, scorer, ref_logps, cfg.loss_config(method), exp.kl_to_retrained
        )
        unlearn(pretrained, forget, retain, cfg, method, seed, evaluate, advance, ref_forget)
        write_json(parts / point_folder(beta, lr) / f"{method}.json", record)


def _pretrain_and_retrain(data, data_cfg, model_cfg, train_cfg, exp, cache, progress, seed, label):
    """The pretrained model (on the chains marked for pretraining) and the retrained oracle (retain chain only),
    each cached by a hash of everything that determines it."""
    max_len = max(c.length for c in data_cfg.chains)
    common = {k: v for k, v in asdict(data_cfg).items() if k != "chains"}
    make = lambda: new_model(model_cfg, data_cfg.states, max_len, seed).to(torch.device(exp.device))  # noqa: E731
    models = []
    for kind, ids in (("pretrain", [k for k in range(len(data)) if data[k].spec.pretrain]), ("retrain", [0])):
        chains = {k: data[k].spec for k in ids}
        key = cache_key(
            revision=MODEL_REVISION,
            kind=kind,
            data=common,
            K=len(data),
            chains=chains,
            model=model_cfg,
            train=train_cfg,
            seed=seed,
            max_len=max_len,
        )
        train_data = split_tokens(data, "train", ids)
        models.append(_train(progress, f"{label}: {kind}", cache, key, make, train_data, train_cfg, seed))
    return tuple(models)


class _Scorer:
    """Exact KL of a model's next-token distributions on every chain's test set, to the true chain or to the
    retrained model."""

    def __init__(self, data, tests, pretrained_logits, retrained_logits):
        self.data, self.tests = data, tests
        self.pretrained_logits, self.retrained_logits = pretrained_logits, retrained_logits
        self.names = [c.spec.name for c in data]

    def kls(self, logits: list[torch.Tensor], against_retrained: bool = False) -> dict[str, float]:
        if against_retrained:
            pairs = zip(self.names, logits, self.retrained_logits, self.tests)
            return {n: kl_to_model(lg, rl, t.labels) for n, lg, rl, t in pairs}
        pairs = zip(self.names, logits, self.tests, self.data)
        return {n: kl_to_chain(lg, t.input_ids, t.labels, c.chain.transition) for n, lg, t, c in pairs}

    def reference(self) -> dict:
        """The chains and the reference points: the pretrained and retrained models, and the retain-only bound."""
        retain = self.data[0].chain.transition
        return {
            "chains": [{**asdict(c.spec), "entropy_rate": c.chain.entropy_rate()} for c in self.data],
            "pretrained": self.kls(self.pretrained_logits),
            "retrained": self.kls(self.retrained_logits),
            "retain_only_exact": {
                n: exact_chain_kl(t.input_ids, t.labels, c.chain.transition, retain)
                for n, t, c in zip(self.names, self.tests, self.data)
            },
        }


def _new_record(names: list[str], kl_to_retrained: bool) -> dict:
    record: dict = {"iterations": [], "kl": {n: [] for n in names}, "loss": [], "forget_loss": []}
    if kl_to_retrained:
        record["kl_retrained"] = {n: [] for n in names}
    record["weights"] = {w: {n: {"mean": [], "examples": []} for n in names[1:]} for w in ("npo", "simnpo")}
    return record


def _record_point(record, scorer: _Scorer, ref_logps, loss_config, kl_to_retrained: bool, model, iteration, losses):
    """One evaluation point of an unlearning trajectory: losses, KLs and the NPO/SimNPO gradient weights of the
    forget chains' test sequences (their mean and the first TRACKED_EXAMPLES)."""
    # before the first step the model is the pretrained one, whose logits are known
    logits = scorer.pretrained_logits if iteration == 0 else [forward_all(model, t) for t in scorer.tests]
    record["iterations"].append(iteration)
    record["loss"].append(losses.get("loss"))
    record["forget_loss"].append(losses.get("forget"))
    for name, value in scorer.kls(logits).items():
        record["kl"][name].append(value)
    if kl_to_retrained:
        for name, value in scorer.kls(logits, against_retrained=True).items():
            record["kl_retrained"][name].append(value)
    for k in range(1, len(scorer.names)):
        logps, lengths = sequence_logprobs(logits[k], scorer.tests[k].labels)
        weights = {
            "npo": npo_weights(logps, ref_logps[k], loss_config.beta),
            "simnpo": simnpo_weights(logps, lengths, loss_config.beta, loss_config.margin),
        }
        for w, values in weights.items():
            record["weights"][w][scorer.names[k]]["mean"].append(values.mean().item())
            record["weights"][w][scorer.names[k]]["examples"].append(values[:TRACKED_EXAMPLES].tolist())


def _train(progress: Progress, description: str, cache, key, make, data, config: TrainConfig, seed: int):
    total = steps_per_training(len(data), config)
    advance = progress(description, total)
    model, loaded = cached_training(cache, key, make, data, config, seed, advance)
    if loaded:
        advance(total)
    return model


def _mean_std(values: list) -> dict:
    array = np.asarray(values, dtype=float)
    return {"mean": array.mean(0).tolist(), "std": array.std(0).tolist(), "seeds": array.tolist()}


def _case_entry(seed_folders: list[Path], point: str, methods: tuple[str, ...], seeds: tuple[int, ...]) -> dict:
    """One case at one sweep point: reference points and per-method trajectories, each value as its mean and
    standard deviation over seeds and every seed's own."""
    refs = [read_json(s / "reference.json") for s in seed_folders]
    names = [c["name"] for c in refs[0]["chains"]]
    entry: dict = {"chains": refs[0]["chains"], "seeds": list(seeds), "reference": {}, "methods": {}}
    for kind in ("pretrained", "retrained", "retain_only_exact"):
        entry["reference"][kind] = {n: _mean_std([r[kind][n] for r in refs]) for n in names}
    for method in methods:
        runs = [read_json(s / point / f"{method}.json") for s in seed_folders]
        summary = {
            "iterations": runs[0]["iterations"],
            "kl": {n: _mean_std([r["kl"][n] for r in runs]) for n in names},
        }
        if "kl_retrained" in runs[0]:
            summary["kl_retrained"] = {n: _mean_std([r["kl_retrained"][n] for r in runs]) for n in names}
        summary["weights"] = {
            w: {n: _mean_std([r["weights"][w][n]["mean"] for r in runs]) for n in names[1:]} for w in ("npo", "simnpo")
        }
        summary["weight_examples"] = runs[0]["weights"]
        summary["loss"] = runs[0]["loss"]
        entry["methods"][method] = summary
    return entry


def aggregate(exp: ExperimentConfig, unlearn_cfg: UnlearnConfig, folder: Path, sweep: Sweep | None = None) -> dict:
    """Collect the part files into one results dict: per sweep point (β, lr) and case, reference points and
    per-method trajectories over seeds (``_case_entry``)."""
    points = []
    for beta, lr in own_sweep(sweep, unlearn_cfg).points():
        cases = {
            case: _case_entry(
                [folder / "parts" / case / f"seed{s}" for s in exp.seeds],
                point_folder(beta, lr),
                unlearn_cfg.methods,
                exp.seeds,
            )
            for case in exp.cases
        }
        points.append({"beta": beta, "lr": lr, "cases": cases})
    results = {"kind": "markov", "points": points}
    write_json(folder / MARKOV_RESULTS_FILE, results)
    return results


def run_experiment(
    exp: ExperimentConfig,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    unlearn_cfg: UnlearnConfig,
    folder: Path,
    cache: Path | None,
    progress: Progress = _no_progress,
    sweep: Sweep | None = None,
) -> dict:
    """Every (case, seed) in turn, each sweep point and method within it (``run_case_seed``), then ``aggregate``."""
    for case in exp.cases:
        for seed in exp.seeds:
            run_case_seed(exp, case, seed, model_cfg, train_cfg, unlearn_cfg, folder, cache, progress, sweep)
    return aggregate(exp, unlearn_cfg, folder, sweep)
