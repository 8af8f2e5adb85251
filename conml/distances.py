"""Distances phi between task-model representations, row-wise and as all-pairs matrices.

Each distance gives `rows(a, b)` for matched rows and `pairs(a, b)` for the [A, B] matrix between
all rows of a and all rows of b; the matrix form avoids materialising [A, B, d] for large d (MAML's
adapted weights have ~10^5 entries per task).
"""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F
from torch import Tensor


def cosine_rows(a: Tensor, b: Tensor) -> Tensor:
    """1 - cos(a_i, b_i) for each row i."""
    return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-12)


def cosine_pairs(a: Tensor, b: Tensor) -> Tensor:
    """1 - cos(a_i, b_j) for all i, j."""
    return 1.0 - F.normalize(a, dim=-1, eps=1e-12) @ F.normalize(b, dim=-1, eps=1e-12).transpose(0, 1)


def sigmoid_squared_rows(a: Tensor, b: Tensor) -> Tensor:
    """sigmoid(||a_i - b_i||^2): a bounded squared error (the paper's phi for in-context learning)."""
    return torch.sigmoid((a - b).pow(2).sum(-1))


def sigmoid_squared_pairs(a: Tensor, b: Tensor) -> Tensor:
    """sigmoid(||a_i - b_j||^2) for all i, j, without a square root (finite gradients at a_i = b_j)."""
    squared = a.pow(2).sum(-1)[:, None] + b.pow(2).sum(-1)[None, :] - 2.0 * a @ b.transpose(0, 1)
    return torch.sigmoid(squared.clamp_min(0.0))


class Distance(str, Enum):
    """The distances ConML can use, by config name."""

    cosine = "cosine"
    sigmoid_squared = "sigmoid_squared"

    def rows(self, a: Tensor, b: Tensor) -> Tensor:
        return _ROWS[self](a, b)

    def pairs(self, a: Tensor, b: Tensor) -> Tensor:
        return _PAIRS[self](a, b)


_ROWS = {Distance.cosine: cosine_rows, Distance.sigmoid_squared: sigmoid_squared_rows}
_PAIRS = {Distance.cosine: cosine_pairs, Distance.sigmoid_squared: sigmoid_squared_pairs}
