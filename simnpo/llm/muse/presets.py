"""MUSE's presets (docs/conventions.md, Presets): shared optimisation values, the corpus they are for, and values per
method family."""

from __future__ import annotations

# The NPO baseline as published (Zhang et al. 2024; MUSE's own NPO baselines): β 0.1, weights 1 and 1.
NPO = {"beta": 0.1, "forget_weight": 1.0, "retain_weight": 1.0}

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
    methods = {"simnpo": simnpo, "npo": NPO, "ga": {"forget_weight": 1.0, "retain_weight": 1.0}}
    return {"settings": {"corpus": corpus}, "shared": _PAPER_MUSE_SHARED, "methods": methods}


PRESETS: dict[str, dict] = {
    "paper-muse-news": _paper_muse("news", 0.7),
    "paper-muse-books": _paper_muse("books", 0.75),
    # the built-in mini-MUSE on 2 CPU cores, tuned here (README)
    "mini-muse": {
        # tuned, like mini-tofu, without gradient clipping
        "shared": {
            **_PAPER_MUSE_SHARED,
            "lr": 3e-4,
            "epochs": 3,
            "bf16": False,
            "max_length": 128,
            "retain_weight": 1.0,
            "max_grad_norm": 0.0,
        },
        "methods": {
            "ga": {},
            "npo": {"beta": 0.1},
            "simnpo": {"beta": 2.5, "margin": 0.0},
            # the others, each the best by the best-point rule of the settings measured (README): RMU of 3 (lr 1e-3
            # to 2e-2, c 40, α 3 or 10: the larger steps lose KnowMem on D_r), UNDIAL of 3 (lr 1e-4 to 1e-3), WGA
            # of 4 (β 0.25 or 1; lr 1e-4 to 1e-3), SatImp of 4 ((β1, β2) (5, 1) or (1, 0.5); lr 1e-4 to 1e-3),
            # CE-U of 4 (lr 3e-5 to 1e-3: from 3e-4 up it erases both corpora), PDU of 3 (lr 1e-4 to 1e-3, warm-up 1)
            "rmu": {"rmu_layer": 2, "lr": 1e-3, "steering": 40.0, "retain_weight": 3.0},
            "undial": {"lr": 1e-4},
            "wga": {"beta": 0.25, "lr": 1e-4},
            "satimp": {},
            "ceu": {"lr": 3e-5},
            "pdu": {"dual_warmup_epochs": 1.0},
        },
    },
}


def default_preset(data: str, given: dict) -> str:
    """The built-in's on built-in data, else the paper's for the corpus."""
    return "mini-muse" if data == "builtin" else f"paper-muse-{given.get('corpus', 'news')}"
