"""The FiLM adaptation network of CNAPs: a task representation z in, FiLM parameters for every block out.

For each stage of the feature extractor, a shared ReLU layer maps z to the stage width; then one
small residual MLP per FiLM vector (gamma1, beta1, gamma2, beta2 of every block) produces it. Each
output is scaled elementwise by a learned vector initialised near zero (N(0, 0.001)) and gammas are
offset by one, so adaptation starts at the identity; the L2 norm of those scales is CNAPs' FiLM
regulariser. All MLPs of a stage run as one batched einsum.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from conml.nets.resnet18 import FILM_PARAMETERS


class ResidualHeads(nn.Module):
    """`heads` independent MLPs of three residual linear layers (x + Wx + b), ReLU between layers."""

    def __init__(self, heads: int, size: int, layers: int = 3):
        super().__init__()
        bound = 1.0 / math.sqrt(size)  # nn.Linear's default initialisation
        self.weight = nn.Parameter(torch.empty(layers, heads, size, size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(layers, heads, size).uniform_(-bound, bound))

    def forward(self, h: Tensor) -> Tensor:
        """h [B, size] (shared by all heads) -> [B, heads, size]."""
        x = h.unsqueeze(1).expand(-1, self.weight.shape[1], -1)
        for layer in range(self.weight.shape[0]):
            if layer > 0:
                x = torch.relu(x)
            x = x + torch.einsum("bkc,kdc->bkd", x, self.weight[layer]) + self.bias[layer]
        return x


class FilmStageGenerator(nn.Module):
    """FiLM parameters [B, blocks, 4, channels] of one stage from task representations [B, z_dim]."""

    def __init__(self, z_dim: int, channels: int, blocks: int):
        super().__init__()
        self.blocks, self.channels = blocks, channels
        self.shared = nn.Sequential(nn.Linear(z_dim, channels), nn.ReLU())
        self.heads = ResidualHeads(blocks * len(FILM_PARAMETERS), channels)
        self.scales = nn.Parameter(torch.randn(blocks * len(FILM_PARAMETERS), channels) * 1e-3)

    def forward(self, z: Tensor) -> Tensor:
        change = (self.heads(self.shared(z)) * self.scales).view(
            z.shape[0], self.blocks, len(FILM_PARAMETERS), self.channels
        )
        return change + _identity(change)


class FilmGenerator(nn.Module):
    """FiLM parameters for every stage of a feature extractor with the given (channels, blocks) layout."""

    def __init__(self, z_dim: int, layout: tuple[tuple[int, int], ...]):
        super().__init__()
        self.stages = nn.ModuleList(FilmStageGenerator(z_dim, channels, blocks) for channels, blocks in layout)

    def forward(self, z: Tensor) -> list[Tensor]:
        return [stage(z) for stage in self.stages]

    def regularization(self) -> Tensor:
        """Sum of squared output scales: pulls every gamma towards 1 and every beta towards 0."""
        return sum(stage.scales.pow(2).sum() for stage in self.stages)

    @staticmethod
    def identity_offset(film: list[Tensor]) -> list[Tensor]:
        """The FiLM parameters minus the identity (gamma - 1, beta): what the task changed."""
        return [f - _identity(f) for f in film]


def _identity(like: Tensor) -> Tensor:
    """[4, 1]: 1 for the gammas, 0 for the betas, so gamma * x + beta leaves x unchanged."""
    return torch.tensor(
        [float(name.startswith("gamma")) for name in FILM_PARAMETERS], dtype=like.dtype, device=like.device
    )[:, None]
