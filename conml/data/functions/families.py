"""The function classes of Garg et al. 2022, drawn and applied batched over tasks.

Each class draws the parameters of `count` functions at once (`draw`) and applies them to
inputs x [tasks, points, dims] (`__call__`), giving y [tasks, points]. Only the first `active`
input coordinates carry data while the curriculum is growing the dimension; the others are zero.
Parameters are dicts of tensors with a leading task axis, so tasks drawn one by one concatenate.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

from conml.errors import ConfigError

Params = dict[str, Tensor]


class FunctionClass(Protocol):
    """What a task family needs from a function class."""

    def draw(self, g: torch.Generator, count: int, dims: int, active: int) -> Params:
        """Parameters of `count` functions of `dims` inputs, of which the first `active` carry data."""

    def __call__(self, params: Params, x: Tensor) -> Tensor:
        """y [tasks, points] of each task's function at its inputs x [tasks, points, dims]."""


def _normal(g: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=g, device=g.device)


class LinearFunctions:
    """y = <w, x> with w ~ N(0, I)."""

    def draw(self, g: torch.Generator, count: int, dims: int, active: int) -> Params:
        return {"w": _normal(g, count, dims)}

    def __call__(self, params: Params, x: Tensor) -> Tensor:
        return torch.einsum("bnd,bd->bn", x, params["w"])


class SparseLinearFunctions(LinearFunctions):
    """y = <w, x> with w ~ N(0, I) restricted to `sparsity` coordinates drawn among the active ones."""

    def __init__(self, sparsity: int):
        if sparsity < 1:
            raise ConfigError(f"dataset.functions.sparsity must be at least 1, got {sparsity}.")
        self.sparsity = sparsity

    def draw(self, g: torch.Generator, count: int, dims: int, active: int) -> Params:
        if self.sparsity > active:
            raise ConfigError(
                f"dataset.functions.sparsity={self.sparsity} exceeds the {active} active input dimensions; "
                "lower the sparsity or raise dataset.dims (and dataset.curriculum.dims_start)."
            )
        w = _normal(g, count, dims)
        # Inactive coordinates score above every active one, so topk never picks them.
        scores = torch.rand(count, dims, generator=g, device=g.device)
        scores[:, active:] = 2.0
        keep = scores.topk(self.sparsity, dim=1, largest=False).indices
        mask = torch.zeros_like(w).scatter_(1, keep, 1.0)
        return {"w": w * mask}


class DecisionTrees:
    """Complete binary trees of depth `depth` that split on the sign of one input coordinate per node.

    As in the original, node coordinates are drawn over all `dims` coordinates (also the ones the
    curriculum still holds at zero, which always send an input left) and every node gets a
    N(0, 1) value, of which only the leaves' are ever returned.
    """

    def __init__(self, depth: int):
        if depth < 1:
            raise ConfigError(f"dataset.functions.depth must be at least 1, got {depth}.")
        self.depth = depth

    @property
    def nodes(self) -> int:
        return 2 ** (self.depth + 1) - 1

    def draw(self, g: torch.Generator, count: int, dims: int, active: int) -> Params:
        coordinate = torch.randint(0, dims, (count, self.nodes), generator=g, device=g.device)
        return {"coordinate": coordinate, "value": _normal(g, count, self.nodes)}

    def leaves(self, params: Params, x: Tensor) -> Tensor:
        """Index [tasks, points] of the node each input ends in after `depth` decisions."""
        coordinate = params["coordinate"]
        node = torch.zeros(x.shape[:2], dtype=torch.long, device=x.device)
        for _ in range(self.depth):
            feature = coordinate.gather(1, node)
            right = x.gather(2, feature.unsqueeze(2)).squeeze(2) > 0
            node = 2 * node + 1 + right.long()
        return node

    def __call__(self, params: Params, x: Tensor) -> Tensor:
        return params["value"].gather(1, self.leaves(params, x))


class ReLUNets:
    """y = sqrt(2 / hidden) * relu(x W1) W2 with standard normal weights (the scaling keeps y at unit scale)."""

    def __init__(self, hidden: int):
        if hidden < 1:
            raise ConfigError(f"dataset.functions.hidden must be at least 1, got {hidden}.")
        self.hidden = hidden

    def draw(self, g: torch.Generator, count: int, dims: int, active: int) -> Params:
        return {"w1": _normal(g, count, dims, self.hidden), "w2": _normal(g, count, self.hidden)}

    def __call__(self, params: Params, x: Tensor) -> Tensor:
        hidden = torch.relu(torch.bmm(x, params["w1"]))
        return torch.einsum("bnh,bh->bn", hidden, params["w2"]) * math.sqrt(2.0 / self.hidden)
