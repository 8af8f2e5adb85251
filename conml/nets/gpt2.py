"""A GPT-2 style causal transformer over vector tokens (the in-context learner of Garg et al. 2022).

Tokens are real vectors, not word ids: a linear read-in maps them to the model width and a linear
read-out maps every position's final state to `out_features` numbers. In between sit the GPT-2
blocks (pre-LayerNorm, learned absolute positions, tanh-GELU MLP, no dropout) with the GPT-2
initialisation. Attention is `F.scaled_dot_product_attention(is_causal=True)`, which picks a fused
kernel on the GPU; the layers keep fp32 weights so that bf16 autocast around the call is all
mixed precision needs.

Reader tokens: `forward(tokens, readers=(p_1, ..., p_m))` treats the last m tokens as readers of
prefixes of the sequence before them. Reader j sits at position p_j and attends only to the first
p_j tokens and to itself, so its output is exactly the one it would have as token p_j in a pass
over those p_j tokens and itself alone. Under causal attention a prefix's hidden states are those
of the same tokens in the longer sequence, so one pass answers for several prefixes at once.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conml.errors import ConfigError


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, h: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """`mask` [T, T]: True where token t may attend to token s; None: causal."""
        batch, length, width = h.shape
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in self.qkv(h).chunk(3, dim=-1))
        mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.out(mixed.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))

    def forward(self, h: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        h = h + self.attention(self.attention_norm(h), mask)
        return h + self.mlp(self.mlp_norm(h))


class GPT2(nn.Module):
    """Tokens [B, T, in_features] -> outputs [B, T, out_features]; output t sees tokens 0..t only
    (a reader token: the prefix it reads, and itself)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        width: int,
        depth: int,
        heads: int,
        max_positions: int,
    ):
        super().__init__()
        if width % heads != 0:
            raise ConfigError(f"model.width={width} must be a multiple of model.heads={heads}.")
        self.max_positions = max_positions
        self.read_in = nn.Linear(in_features, width)
        self.positions = nn.Embedding(max_positions, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width)
        self.read_out = nn.Linear(width, out_features)
        self._init_gpt2(depth)

    def _init_gpt2(self, depth: int) -> None:
        """GPT-2's initialisation for the transformer; read-in and read-out keep PyTorch's, as in Garg et al."""
        nn.init.normal_(self.positions.weight, std=0.02)
        for block in self.blocks:
            for name, module in block.named_modules():
                if isinstance(module, nn.Linear):
                    # Residual projections shrink with depth so the residual stream keeps its scale.
                    residual = name in ("attention.out", "mlp.2")
                    nn.init.normal_(module.weight, std=0.02 / math.sqrt(2 * depth) if residual else 0.02)
                    nn.init.zeros_(module.bias)

    def forward(self, tokens: Tensor, readers: Sequence[int] = ()) -> Tensor:
        """`readers`: the last len(readers) tokens read prefixes of the tokens before them, token j
        the first readers[j] (see the module docstring); no readers: a causal pass."""
        length, readers = tokens.shape[1], tuple(readers)
        sequence = length - len(readers)
        if any(not 0 <= r <= sequence for r in readers):
            raise ValueError(
                f"reader positions {readers} must lie in [0, {sequence}], the length of the sequence they read"
            )
        furthest = max([sequence, *(r + 1 for r in readers)])
        if furthest > self.max_positions:
            raise ConfigError(
                f"A prompt of {furthest} positions exceeds model.max_positions={self.max_positions}; "
                f"raise model.max_positions to at least {furthest} (2 tokens per example, plus 1 for the probe or query)."
            )
        if readers in ((), (sequence,)):  # a reader of the whole sequence is its causal next token
            h, mask = self.read_in(tokens) + self.positions.weight[:length], None
        else:
            positions, mask = reader_layout(sequence, readers, tokens.device)
            h = self.read_in(tokens) + self.positions(positions)
        for block in self.blocks:
            h = block(h, mask)
        return self.read_out(self.final_norm(h))


@lru_cache(maxsize=64)
def reader_layout(sequence: int, readers: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """Position indices [T] and attention mask [T, T] (True: may attend) of `sequence` causal tokens
    followed by one reader token per entry of `readers`. Built once per shape and device."""
    count = sequence + len(readers)
    ends = torch.tensor([*range(1, sequence + 1), *readers], device=device)  # token t attends to tokens < ends[t]
    keys = torch.arange(count, device=device)
    mask = (keys[None, :] < ends[:, None]) | torch.eye(count, dtype=torch.bool, device=device)
    positions = torch.cat([keys[:sequence], torch.tensor(readers, device=device)])
    return positions, mask
