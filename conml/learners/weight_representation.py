"""psi for learners whose task model is a set of adapted weights (MAML, FOMAML, Reptile).

- `weights` (the paper): theta' flattened and concatenated. All tasks share theta, so cosine
  distances between tasks are O((|theta' - theta| / |theta|)^2): about 1e-5 for the sine MLP.
- `update`: theta' - theta, the task-specific part alone. Under first-order adaptation (FOMAML,
  Reptile) it is a constant of theta, so ConML then has no gradient path.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from conml.errors import ConfigError

WEIGHT_REPRESENTATIONS = ("weights", "update")


def check_weight_representation(representation: str) -> str:
    if representation not in WEIGHT_REPRESENTATIONS:
        raise ConfigError(
            f"learner.representation must be one of {list(WEIGHT_REPRESENTATIONS)}, got '{representation}'."
        )
    return representation


def represent_weights(models: dict[str, Tensor], net: nn.Module, representation: str) -> Tensor:
    """[T, d]: each task's adapted weights (or their change from the meta-parameters of `net`)."""
    if representation == "update":
        meta = dict(net.named_parameters())
        return torch.cat([(w - meta[name]).flatten(1) for name, w in models.items()], dim=1)
    return torch.cat([w.flatten(1) for w in models.values()], dim=1)
