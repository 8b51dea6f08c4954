"""A small GPT for Markov-chain sequences (nanoGPT-like, one file).

Two block styles:
- ``"authors"``: the authors' unusual block, for fidelity: single-head attention without biases on the query, key
  and value projections and whose values are summed without an output projection, post-LayerNorm
  (x = LN(x + attn(x)); x = LN(x + mlp(x))), ReLU MLP of width ``d_mlp``; position embeddings start at N(0, 0.02)
  as in the authors' ``synthetic/model.py`` (token embeddings and the other layers at PyTorch's defaults in both).
- ``"standard"``: a pre-LN block with multi-head attention, an output projection and a GELU MLP (4·d_model),
  and a final LayerNorm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ARCHITECTURES = ("authors", "standard")
# Part of the cache key of trained models: raised whenever a change here changes the trained weights (2: the
# authors' block lost its query/key/value biases and its position embeddings start at N(0, 0.02))
MODEL_REVISION = 2


@dataclass(frozen=True)
class ModelConfig:
    """4 layers of width 128, learned positions, no dropout (docs/markov.md)."""

    arch: str = "authors"
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4  # standard blocks only; the authors' block has one head
    d_mlp: int = 128  # authors' block only; the standard block uses 4·d_model

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; use one of {', '.join(ARCHITECTURES)}")
        if self.n_layer < 1 or self.d_model < 1 or self.d_mlp < 1:
            raise ValueError("n_layer, d_model and d_mlp must be >= 1")
        if self.arch == "standard" and self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} must be a multiple of n_head {self.n_head}")


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, out_proj: bool, bias: bool = True):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model) if out_proj else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:  # [batch, seq, d_model] -> same
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, D // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [batch, head, seq, d_head]
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class AuthorsBlock(nn.Module):
    """Post-LN, single head without query/key/value biases, no attention output projection, ReLU MLP."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.attn = CausalSelfAttention(c.d_model, 1, out_proj=False, bias=False)
        self.ln1, self.ln2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.mlp = nn.Sequential(nn.Linear(c.d_model, c.d_mlp), nn.ReLU(), nn.Linear(c.d_mlp, c.d_model))

    def forward(self, x: Tensor) -> Tensor:
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.mlp(x))


class StandardBlock(nn.Module):
    """Pre-LN, multi-head attention with output projection, GELU MLP."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.attn = CausalSelfAttention(c.d_model, c.n_head, out_proj=True)
        self.ln1, self.ln2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.mlp = nn.Sequential(nn.Linear(c.d_model, 4 * c.d_model), nn.GELU(), nn.Linear(4 * c.d_model, c.d_model))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class MarkovGPT(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int, max_len: int):
        super().__init__()
        self.config, self.max_len = config, max_len
        self.tok = nn.Embedding(vocab_size, config.d_model)
        self.pos = nn.Embedding(max_len, config.d_model)
        block = AuthorsBlock if config.arch == "authors" else StandardBlock
        self.blocks = nn.ModuleList(block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model) if config.arch == "standard" else nn.Identity()
        self.head = nn.Linear(config.d_model, vocab_size)
        if config.arch == "authors":  # their position embeddings start small; nn.Embedding's default is N(0, 1)
            nn.init.normal_(self.pos.weight, mean=0.0, std=0.02)

    def forward(self, input_ids: Tensor) -> Tensor:  # [batch, seq] -> logits [batch, seq, vocab]
        T = input_ids.shape[1]
        assert T <= self.max_len, f"sequence of {T} tokens exceeds the model's {self.max_len} positions"
        x = self.tok(input_ids) + self.pos(torch.arange(T, device=input_ids.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))
