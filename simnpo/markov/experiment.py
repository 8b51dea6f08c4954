"""The reference-model-bias experiments: for each case and seed, pretrain and retrain (cached), then unlearn with
every method, evaluating the exact KL metrics after every iteration.

Each finished (case, seed, method) is written atomically to ``parts/`` of the run folder, so a killed run resumes
where it stopped; ``results.json`` aggregates the parts with mean and standard deviation over seeds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from simnpo.losses import npo_weights, sequence_logprobs, simnpo_weights
from simnpo.markov.data import CASES, DataConfig, case_chains, sample_data, split_tokens
from simnpo.markov.metrics import exact_chain_kl, kl_to_chain, kl_to_model
from simnpo.markov.model import ModelConfig
from simnpo.markov.train import (
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
) -> None:
    """Everything of one (case, seed): reference points, then one part file per method not yet written."""
    parts = folder / "parts" / case / f"seed{seed}"
    todo = [m for m in unlearn_cfg.methods if not (parts / f"{m}.json").is_file()]
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
    scorer = _Scorer(data, tests, [forward_all(retrained, t) for t in tests])
    pretrained_logits = [forward_all(pretrained, t) for t in tests]
    write_json(parts / "reference.json", scorer.reference(pretrained_logits))
    ref_logps = [sequence_logprobs(lg, t.labels)[0] for lg, t in zip(pretrained_logits, tests)]
    forget, retain = split_tokens(data, "train", list(range(1, len(data)))), split_tokens(data, "train", [0])
    for method in todo:
        record = _new_record(scorer.names, exp.kl_to_retrained)
        evaluate = functools.partial(
            _record_point, record, scorer, ref_logps, unlearn_cfg.loss_config(method), exp.kl_to_retrained
        )
        advance = progress(f"{label}: {method}", unlearn_cfg.iterations)
        unlearn(pretrained, forget, retain, unlearn_cfg, method, seed, evaluate, advance)
        write_json(parts / f"{method}.json", record)


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

    def __init__(self, data, tests, retrained_logits):
        self.data, self.tests, self.retrained_logits = data, tests, retrained_logits
        self.names = [c.spec.name for c in data]

    def kls(self, logits: list[torch.Tensor], against_retrained: bool = False) -> dict[str, float]:
        if against_retrained:
            pairs = zip(self.names, logits, self.retrained_logits, self.tests)
            return {n: kl_to_model(lg, rl, t.labels) for n, lg, rl, t in pairs}
        pairs = zip(self.names, logits, self.tests, self.data)
        return {n: kl_to_chain(lg, t.input_ids, t.labels, c.chain.transition) for n, lg, t, c in pairs}

    def reference(self, pretrained_logits) -> dict:
        """The chains and the reference points: the pretrained and retrained models, and the retain-only bound."""
        retain = self.data[0].chain.transition
        return {
            "chains": [{**asdict(c.spec), "entropy_rate": c.chain.entropy_rate()} for c in self.data],
            "pretrained": self.kls(pretrained_logits),
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
    logits = [forward_all(model, t) for t in scorer.tests]
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
    return {"mean": array.mean(0).tolist(), "std": array.std(0).tolist()}


def aggregate(exp: ExperimentConfig, unlearn_cfg: UnlearnConfig, folder: Path) -> dict:
    """Collect the part files into one results dict: per case, reference points and per-method trajectories with
    mean and standard deviation over seeds (and every seed's values)."""
    results: dict = {"kind": "markov", "cases": {}}
    for case in exp.cases:
        seeds = [folder / "parts" / case / f"seed{s}" for s in exp.seeds]
        refs = [read_json(s / "reference.json") for s in seeds]
        names = [c["name"] for c in refs[0]["chains"]]
        entry: dict = {"chains": refs[0]["chains"], "seeds": list(exp.seeds), "reference": {}, "methods": {}}
        for point in ("pretrained", "retrained", "retain_only_exact"):
            entry["reference"][point] = {n: _mean_std([r[point][n] for r in refs]) for n in names}
        for method in unlearn_cfg.methods:
            runs = [read_json(s / f"{method}.json") for s in seeds]
            summary = {
                "iterations": runs[0]["iterations"],
                "kl": {n: _mean_std([r["kl"][n] for r in runs]) for n in names},
            }
            if "kl_retrained" in runs[0]:
                summary["kl_retrained"] = {n: _mean_std([r["kl_retrained"][n] for r in runs]) for n in names}
            summary["weights"] = {
                w: {n: _mean_std([r["weights"][w][n]["mean"] for r in runs]) for n in names[1:]}
                for w in ("npo", "simnpo")
            }
            summary["weight_examples"] = runs[0]["weights"]
            summary["loss"] = runs[0]["loss"]
            summary["per_seed"] = {"kl": {n: [r["kl"][n] for r in runs] for n in names}}
            entry["methods"][method] = summary
        results["cases"][case] = entry
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
) -> dict:
    for case in exp.cases:
        for seed in exp.seeds:
            run_case_seed(exp, case, seed, model_cfg, train_cfg, unlearn_cfg, folder, cache, progress)
    return aggregate(exp, unlearn_cfg, folder)
