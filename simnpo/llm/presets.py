"""Named hyperparameter presets for ``simnpo llm``, per method (docs/conventions.md).

A preset holds the values every method shares (optimisation, data) and, per method family (``ga``, ``npo``,
``simnpo``, ``idkpo``; a full method name such as ``npo_kl`` may override its family), the loss values that method
is published with. Precedence: preset shared < preset per method < command-line options (which apply to every
method). A requested method the preset has no values for is refused.
"""

from __future__ import annotations

from simnpo.losses import METHODS

# The paper's TOFU optimisation: lr 1e-5, 10 epochs, effective batch 32, weight decay 0.01, one warm-up epoch then
# linear decay, paged AdamW 32-bit, bf16.
_PAPER_TOFU = {
    "lr": 1e-5,
    "epochs": 10,
    "batch_size": 32,
    "weight_decay": 0.01,
    "warmup_epochs": 1.0,
    "schedule": "linear",
    "optimizer": "paged_adamw_32bit",
    "bf16": True,
}
# The NPO baseline as published (Zhang et al. 2024; open-unlearning's NPO default): β 0.1, weights 1 and 1.
_NPO = {"beta": 0.1, "forget_weight": 1.0, "retain_weight": 1.0}
# open-unlearning's other defaults: DPO/IdkPO β 0.1, GradDiff weights 1 and 1, SimNPO = the paper's forget10 values.
_OPEN_UNLEARNING = {
    "ga": {"forget_weight": 1.0, "retain_weight": 1.0},
    "npo": _NPO,
    "simnpo": {"beta": 4.5, "forget_weight": 0.125, "retain_weight": 1.0, "margin": 0.0},
    "idkpo": {"beta": 0.1, "forget_weight": 1.0, "retain_weight": 1.0},
}


def _paper_tofu(split: str, beta: float, forget_weight: float) -> dict:
    # SimNPO: the authors' TOFU command (`forget.py split=... npo_coeff=... beta=...`): forget_weight is the
    # published "λ" (their npo_coeff, multiplied onto the forget loss), retain weight 1, margin 0.
    simnpo = {"beta": beta, "forget_weight": forget_weight, "retain_weight": 1.0, "margin": 0.0}
    return {"bench": "tofu", "split": split, "shared": _PAPER_TOFU, "methods": {"simnpo": simnpo, "npo": _NPO}}


# MUSE: lr 1e-5, 10 epochs, batch 4, constant schedule, AdamW, bf16, 2048-token chunks. SimNPO follows the authors'
# released MUSE command (`unlearn.py --algo simnpo_gdr --beta 0.7|0.75 --coeff 0.1 --npo_coeff 1.0`, margin left at
# its default --gamma 0.1 in their convention, γ = β·0.1); the model cards' margins (3.0 News, 0.0 Books) are
# `--margin 3.0 --margin-convention authors_code`. NPO and GA follow MUSE's own baselines (β 0.1, weights 1, 1).
_PAPER_MUSE_SHARED = {
    "lr": 1e-5,
    "epochs": 10,
    "batch_size": 4,
    "weight_decay": 0.0,
    "warmup_epochs": 0.0,
    "schedule": "constant",
    "optimizer": "adamw",
    "bf16": True,
    "max_length": 2048,
}


def _paper_muse(corpus: str, beta: float) -> dict:
    simnpo = {
        "beta": beta,
        "forget_weight": 1.0,
        "retain_weight": 0.1,
        "margin": 0.1,
        "margin_convention": "authors_code",
    }
    methods = {"simnpo": simnpo, "npo": _NPO, "ga": {"forget_weight": 1.0, "retain_weight": 1.0}}
    return {"bench": "muse", "corpus": corpus, "shared": _PAPER_MUSE_SHARED, "methods": methods}


PRESETS: dict[str, dict] = {
    "paper-forget05": _paper_tofu("forget05", 2.5, 0.1375),
    "paper-forget10": _paper_tofu("forget10", 4.5, 0.125),
    # open-unlearning's TOFU defaults for every method, with the paper's optimisation
    "open-unlearning": {"bench": "tofu", "shared": _PAPER_TOFU, "methods": _OPEN_UNLEARNING},
    # the built-in mini-TOFU on 2 CPU cores, tuned here (README): NPO and SimNPO reach similar forget quality (measured
    # at lr 5e-4: NPO β 0.1 over-forgets to utility 0.47, β 0.5 hardly forgets; SimNPO β 0.1-1 spans 0.17-5e-5)
    "mini-tofu": {
        "bench": "tofu",
        "shared": {
            "lr": 5e-4,
            "epochs": 5,
            "batch_size": 8,
            "weight_decay": 0.0,
            "warmup_epochs": 1.0,
            "schedule": "linear",
            "optimizer": "adamw",
            "bf16": False,
            "retain_weight": 1.0,
            "forget_weight": 1.0,
            "margin": 0.0,
        },
        "methods": {"ga": {}, "npo": {"beta": 0.2}, "simnpo": {"beta": 0.25}, "idkpo": {"beta": 0.1}},
    },
    "paper-muse-news": _paper_muse("news", 0.7),
    "paper-muse-books": _paper_muse("books", 0.75),
    # the built-in mini-MUSE on 2 CPU cores, tuned here (README)
    "mini-muse": {
        "bench": "muse",
        "shared": {**_PAPER_MUSE_SHARED, "lr": 2e-4, "bf16": False, "max_length": 128, "retain_weight": 0.1},
        "methods": {"ga": {}, "npo": {"beta": 0.1}, "simnpo": {"beta": 0.7, "margin": 0.0}},
    },
}


def preset(name: str, bench: str, given: dict) -> dict:
    """The preset ``name`` after checking it fits ``bench`` and the split or corpus the user gave; raises
    ValueError for an unknown preset, one of another benchmark, or a contradicting split or corpus."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    chosen = PRESETS[name]
    if chosen["bench"] != bench:
        raise ValueError(f"preset {name} is for --bench {chosen['bench']}, not {bench}")
    for key in ("split", "corpus"):
        if key in chosen and key in given and given[key] != chosen[key]:
            raise ValueError(f"preset {name} is for {chosen[key]}, not {given[key]}; drop --{key} or the preset")
    return chosen


def method_values(name: str, method: str, given: dict) -> dict:
    """Every value ``method`` runs with under preset ``name``: shared < per method < ``given`` (the options on
    the command line). Raises ValueError when the preset holds no values for the method."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    chosen = PRESETS[name]
    family = METHODS[method][0]
    per_method = chosen["methods"].get(method, chosen["methods"].get(family))
    if per_method is None:
        raise ValueError(
            f"preset {name} has no values for method {method}; it sets {', '.join(chosen['methods'])} "
            "(pick other --methods or another --preset)"
        )
    data = {key: chosen[key] for key in ("split", "corpus") if key in chosen}
    return {**data, **chosen["shared"], **per_method, **given}


def default_preset(bench: str, data: str, split: str | None, corpus: str | None) -> str:
    """The preset used when none is given: the built-in benchmark's, else the paper's for that split or corpus
    (open-unlearning's defaults for a TOFU split the paper did not publish)."""
    if data == "builtin":
        return f"mini-{bench}"
    if bench == "muse":
        return f"paper-muse-{corpus or 'news'}"
    paper = f"paper-{split or 'forget10'}"
    return paper if paper in PRESETS else "open-unlearning"
