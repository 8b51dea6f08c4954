"""RMU (Representation Misdirection for Unlearning; Li et al. 2024, the WMDP paper, ``rmu/unlearn.py`` of its
repository) in the trainer: which layer's activations the loss reads, which parameters it trains, and a hook that
captures the layer's output. The loss terms themselves are the loss library's (``losses.rmu_forget_loss``,
``losses.rmu_retain_loss``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from simnpo.losses import rmu_control


@dataclass
class RmuLayers:
    """RMU's layer in the trained model and in the frozen copy, and its control vector c·u."""

    layer: torch.nn.Module
    frozen_layer: torch.nn.Module
    control: torch.Tensor


def check_rmu(index: int, params: str | None, source) -> None:
    """``--rmu-layer`` and ``--rmu-params`` against the starting model before anything is written: its parameter
    names from its config on the meta device (no weights read), when the config can be read (a built-in model not
    built yet is checked by ``rmu_layers`` once loaded)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(source))
    except Exception:  # not built yet, or unreadable: the loaded model is checked later
        return
    with torch.device("meta"):
        _rmu_names(AutoModelForCausalLM.from_config(config), index, params)


def _rmu_names(model, index: int, params: str | None) -> tuple[str, list[str]]:
    """RMU's layer (exactly one module named ``…layers.{index}``) and the names of the parameters it trains (default:
    the down-projections of the layer and the two below); a layer or a parameter pattern that matches nothing is a
    one-line error."""
    names = [name for name, _ in model.named_modules() if re.search(rf"(^|\.)layers\.{index}$", name)]
    if not names:
        layers = getattr(model.config, "num_hidden_layers", 0)
        raise ValueError(f"--rmu-layer {index} matches no module: the model has decoder layers 0 to {layers - 1}")
    if len(names) > 1:
        raise ValueError(f"--rmu-layer {index} matches {len(names)} modules ({', '.join(names)}); give one layer")
    params = params or rf"layers\.({index - 2}|{index - 1}|{index})\.mlp\.down_proj\.weight"
    trained = [name for name, _ in model.named_parameters() if re.search(rf"(^|\.){params}$", name)]
    if not trained:
        raise ValueError(f"--rmu-params {params!r} matches no parameter of the model; give a regex of names")
    return names[0], trained


def rmu_layers(model, frozen, index: int, params: str | None, steering: float, seed: int) -> RmuLayers:
    """Find RMU's layer in ``model`` and its ``frozen`` copy and freeze every parameter of ``model`` but those RMU
    trains (``_rmu_names``)."""
    layer, trained = _rmu_names(model, index, params)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in trained)
    control = rmu_control(model.config.hidden_size, steering, seed)
    return RmuLayers(model.get_submodule(layer), frozen.get_submodule(layer), control)


@contextmanager
def layer_output(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """The hidden states ``module`` outputs during the forward passes run inside the block [batch, seq, d]."""
    seen: list[torch.Tensor] = []
    hook = module.register_forward_hook(lambda m, args, out: seen.append(out[0] if isinstance(out, tuple) else out))
    try:
        yield seen
    finally:
        hook.remove()
