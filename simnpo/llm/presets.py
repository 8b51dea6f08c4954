"""Presets: named hyperparameters per method, held by each benchmark (``tofu/presets.py``, ``muse/presets.py``,
``wmdp/presets.py``).

A preset holds ``settings`` for the benchmark (the split or corpus it is for: a different one given is refused),
``defaults`` of the benchmark's settings that a given option replaces, ``shared`` values every method runs with,
and ``methods``: values per method family (``ga``, ``npo``, ``simnpo``, ``idkpo``, ``rmu``, ``undial``, …; a full method
name such as ``npo_kl`` may override its family). Precedence: the method's own defaults (``losses.METHOD_DEFAULTS``)
< shared < per method < command-line options (which apply to every method): a preset only overrides, and a method it
does not name runs with its defaults and the preset's shared values. ``lora_lr`` (shared or per method) is the lr
used instead of ``lr`` when ``--lora-rank`` is given without ``--lr``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from simnpo.losses import method_family


def check_preset(presets: dict[str, dict], name: str, given_settings: dict, elsewhere: dict[str, str]) -> dict:
    """The preset ``name`` of a benchmark's ``presets`` after checking it fits the settings the user gave (a split
    or corpus); ``elsewhere`` maps other benchmarks' preset names to their benchmark, for the message."""
    if name not in presets:
        if name in elsewhere:
            raise ValueError(f"preset {name} is for --bench {elsewhere[name]}")
        raise ValueError(f"unknown preset {name!r}; use one of {', '.join(presets)}")
    chosen = presets[name]
    for key, value in chosen.get("settings", {}).items():
        if key in given_settings and given_settings[key] != value:
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"preset {name} is for {value}, not {given_settings[key]}; drop {flag} or the preset")
    return chosen


def check_keys(keys: Iterable[str], valid: Iterable[str], where: str) -> None:
    """Every key one of ``valid``; else one line naming the first unknown key, ``where`` it is, and the closest
    valid name (a misspelt key would otherwise be silently ignored)."""
    valid = sorted(valid)
    for key in keys:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid names: {', '.join(valid)}"
            raise ValueError(f"unknown key {key!r} in {where}; {hint}")


def check_preset_keys(name: str, chosen: dict, settings: Iterable[str], method_options: Iterable[str]) -> None:
    """A preset's keys: its ``settings`` and ``defaults`` name fields of the benchmark's settings, its ``shared`` and
    per-method values options of a method (``lora_lr`` too)."""
    check_keys(chosen, ("settings", "defaults", "shared", "methods"), f"preset {name}")
    settings, method_options = list(settings), [*method_options, "lora_lr"]
    for part in ("settings", "defaults"):
        check_keys(chosen.get(part, {}), settings, f"preset {name} ({part})")
    check_keys(chosen.get("shared", {}), method_options, f"preset {name} (shared)")
    for method, values in chosen.get("methods", {}).items():
        check_keys(values, method_options, f"preset {name} (methods: {method})")


def method_values(name: str, chosen: dict, method: str, given: dict) -> dict:
    """Every value ``method`` runs with under the preset ``chosen`` (called ``name``): shared < per method <
    ``given`` (the options on the command line); what none of them sets is the method's default."""
    per_method = chosen["methods"].get(method, chosen["methods"].get(method_family(method), {}))
    values = {**chosen["shared"], **per_method, **given}
    # LoRA adapters need a larger step than full fine-tuning: with --lora-rank and no --lr, the preset's adapter lr
    lora_lr = values.pop("lora_lr", None)
    if values.get("lora_rank") and lora_lr is not None and "lr" not in given:
        values["lr"] = lora_lr
    return values
