"""WMDP's presets (docs/conventions.md, Presets): shared optimisation values, the corpora they are for, and values
per method family."""

from __future__ import annotations

# SimNPO's WMDP model card (OPTML-Group/SimNPO-WMDP-zephyr-7b-beta): lr 4e-6, β 5.5, forget weight 5.0, margin 0,
# retain NLL, 125 steps of batch 32 on 1024-token texts, here 4000 chunks of the bio and cyber forget corpora with
# wikitext as the retain text. NPO runs with the same optimisation and its published β 0.1, weights 1 and 1. RMU: the
# WMDP repository's defaults (rmu/unlearn.py): c 6.5, α 1200, lr 5e-5, batch 4, 512 tokens, layer 7, the
# down-projections of layers 5-7; it stops after 150 batches per corpus, which is --max-forget-chunks 1200 with
# --methods rmu (the preset's 4000 chunks are SimNPO's).
_PAPER_WMDP_SHARED = {
    "lr": 4e-6,
    "epochs": 1,
    "batch_size": 32,
    "weight_decay": 0.0,
    "warmup_epochs": 0.0,
    "schedule": "constant",
    "optimizer": "adamw",
    "bf16": True,
    "max_length": 1024,
}

PRESETS: dict[str, dict] = {
    "paper-wmdp": {
        "defaults": {"max_forget_chunks": 4000},
        "shared": _PAPER_WMDP_SHARED,
        "methods": {
            "simnpo": {"beta": 5.5, "forget_weight": 5.0, "retain_weight": 1.0, "margin": 0.0},
            "npo": {"beta": 0.1, "forget_weight": 1.0, "retain_weight": 1.0},
            "rmu": {
                "lr": 5e-5,
                "batch_size": 4,
                "max_length": 512,
                "steering": 6.5,
                "retain_weight": 1200.0,
                "rmu_layer": 7,
            },
        },
    },
    # the built-in mini-WMDP on 2 CPU cores, tuned here (README: 30 settings measured); like the other mini presets,
    # without clipping
    "mini-wmdp": {
        "shared": {
            **_PAPER_WMDP_SHARED,
            "lr": 2e-3,
            "epochs": 16,
            "batch_size": 8,
            "bf16": False,
            "max_length": 128,
            "max_grad_norm": 0.0,
            "retain_weight": 10.0,
        },
        "methods": {
            "npo": {"beta": 0.1},
            "simnpo": {"beta": 0.25, "margin": 0.0},
            "rmu": {"rmu_layer": 2, "lr": 5e-3, "epochs": 10, "steering": 40.0, "retain_weight": 3.0},
            "ga": {},
            # open-unlearning's other baselines, of 2 or 3 settings each (lr 5e-4, 2e-3; CE-U also 1e-4), the one
            # nearest chance keeping the general accuracy near the target's (README)
            "undial": {},
            "wga": {},
            "satimp": {},
            "ceu": {"lr": 1e-4},
            "pdu": {"lr": 5e-4, "dual_warmup_epochs": 1.0},
        },
    },
}


def default_preset(data: str, given: dict) -> str:
    return "mini-wmdp" if data == "builtin" else "paper-wmdp"
