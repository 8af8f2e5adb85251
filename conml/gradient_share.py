"""ConML's gradient share: how hard its term pulls on the meta-parameters next to the episodic loss.

share = ||grad_theta lambda*(d_in - d_out)|| / ||grad_theta L_e||, over all meta-parameters and the
whole meta-batch. A share of 1e-5 means ConML cannot change training, whatever its loss value says,
so the trainer measures it and says so. It is read after the step's own backward pass with one extra
backward of the contrastive term alone (with task chunks, one per chunk before the chunk's own
backward), so training is the same bit for bit whether or not it is measured.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from conml.distributed import TaskShard

# Below this share, ConML's term cannot move training: the warning threshold.
INERT_BELOW = 1e-3
# Measurements that decide whether a run is warned about an inert ConML term.
MEASUREMENTS_BEFORE_VERDICT = 3


def gradient_share(contrastive: Tensor, parameters: list[Tensor], shard: TaskShard) -> tuple[float, float, float]:
    """(share, ||grad contrastive||, ||grad episodic||) after `total.backward(retain_graph=True)`.

    The parameters' `.grad` must hold the gradient of the whole meta-batch's total loss (summed over
    processes); the episodic gradient is that minus the contrastive one.
    """
    used = [p for p in parameters if p.grad is not None]
    pulls = torch.autograd.grad(contrastive, used, retain_graph=False, allow_unused=True)
    return share_of_pulls([torch.zeros_like(p) if g is None else g for p, g in zip(used, pulls)], used, shard)


def share_of_pulls(pulls: list[Tensor], used: list[Tensor], shard: TaskShard) -> tuple[float, float, float]:
    """(share, ||grad contrastive||, ||grad episodic||) from this process's gradient of the contrastive
    term for each parameter in `used`, whose `.grad` holds the total gradient summed over processes."""
    pulls = shard.sum_tensors(pulls)
    contrastive_sq = sum(g.double().pow(2).sum() for g in pulls)
    episodic_sq = sum((p.grad - g).double().pow(2).sum() for p, g in zip(used, pulls))
    contrastive_norm, episodic_norm = float(contrastive_sq) ** 0.5, float(episodic_sq) ** 0.5
    if episodic_norm == 0.0:  # no episodic pull: any ConML pull is an infinite share (not pull / 1e-300)
        return (math.inf if contrastive_norm else 0.0), contrastive_norm, episodic_norm
    return contrastive_norm / episodic_norm, contrastive_norm, episodic_norm


def inert_warning(shares: list[float], lam: float, representations: tuple[str, ...]) -> str:
    """The one-paragraph notice for a run whose first measured shares all stay below INERT_BELOW."""
    options = "" if not representations else f" or another learner.representation ({', '.join(representations)}),"
    return (
        f"warning: ConML is numerically inert in this run: the gradient of lambda*(d_in - d_out) is "
        f"{', '.join(f'{s:.1e}' for s in shares)} of the episodic loss's gradient over the first {len(shares)} "
        f"measurements (train/conml_grad_share), below {INERT_BELOW:g}, so training is effectively the plain "
        f"meta-learner's. With psi = adapted weights or other representations that all tasks share almost "
        f"entirely, cosine distances between tasks are tiny. Settings that change that: conml.centring=meta_batch "
        f"(measure every psi from the meta-batch mean),{options} or a larger conml.lam (now {lam:g}); "
        "docs/results/conml_signal.md lists the measured share of every learner and setting."
    )
