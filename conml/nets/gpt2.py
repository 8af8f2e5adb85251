"""A GPT-2 style causal transformer over vector tokens (the in-context learner of Garg et al. 2022).

Tokens are real vectors, not word ids: a linear read-in maps them to the model width and a linear
read-out maps every position's final state to `out_features` numbers. In between sit the GPT-2
blocks (pre-LayerNorm, learned absolute positions, tanh-GELU MLP, no dropout) with the GPT-2
initialisation. Attention is `F.scaled_dot_product_attention(is_causal=True)`, which picks a fused
kernel on the GPU; the layers keep fp32 weights so that bf16 autocast around the call is all
mixed precision needs.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from conml.errors import ConfigError


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, h: Tensor) -> Tensor:
        batch, length, width = h.shape
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in self.qkv(h).chunk(3, dim=-1))
        mixed = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(mixed.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.attention(self.attention_norm(h))
        return h + self.mlp(self.mlp_norm(h))


class GPT2(nn.Module):
    """Tokens [B, T, in_features] -> outputs [B, T, out_features]; output t sees tokens 0..t only."""

    def __init__(
        self,
        in_features: int = 20,
        out_features: int = 1,
        width: int = 256,
        depth: int = 12,
        heads: int = 8,
        max_positions: int = 256,
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

    def forward(self, tokens: Tensor) -> Tensor:
        length = tokens.shape[1]
        if length > self.max_positions:
            raise ConfigError(
                f"A prompt of {length} tokens exceeds model.max_positions={self.max_positions}; "
                f"raise model.max_positions to at least {length} (2 tokens per example, plus 1 per probe or query)."
            )
        h = self.read_in(tokens) + self.positions.weight[:length]
        for block in self.blocks:
            h = block(h)
        return self.read_out(self.final_norm(h))
