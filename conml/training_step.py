"""One meta-training step, in one place: the trainer, `make gpu-check`, the memory plan and the
benchmarks' project step all take it from here.

`meta_gradient` puts a meta-batch's meta-gradient in `.grad` (all tasks at once, or task chunk by
task chunk with the same result), summed over processes, and measures ConML's gradient share when
asked; `optimizer_step` clips and applies it. Splitting the two lets a caller time or inspect the
gradient without updating the weights.
"""

from __future__ import annotations

import torch

from conml.distributed import TaskShard
from conml.episodes import EpisodeBatch
from conml.gradient_share import gradient_share, share_of_pulls
from conml.learners.base import Learner
from conml.objective import ConMLObjective, LossParts
from conml.task_chunks import chunked_backward

Share = tuple[float, float, float]  # (share, ||grad contrastive||, ||grad episodic||)


def meta_gradient(
    objective: ConMLObjective,
    learner: Learner,
    batch: EpisodeBatch,
    task_chunk: int | None = None,
    shard: TaskShard | None = None,
    measure_share: bool = False,
) -> tuple[LossParts, Share | None]:
    """The meta-gradient of the whole meta-batch (all processes) in `.grad`; the loss parts, and ConML's
    gradient share when `measure_share` (None when not asked or when ConML is off)."""
    shard = shard or TaskShard()
    learner.zero_grad(set_to_none=True)
    parameters = list(learner.parameters())
    if task_chunk is None:
        parts = objective(learner, batch)
        measure = measure_share and parts.contrastive is not None and parts.contrastive.requires_grad
        parts.total.backward(retain_graph=measure)
        shard.sum_gradients(parameters)
        return parts, gradient_share(parts.contrastive, parameters, shard) if measure else None
    parts, pulls = chunked_backward(objective, learner, batch, task_chunk, parameters if measure_share else None)
    shard.sum_gradients(parameters)
    if pulls is None:
        return parts, None
    pulled = {id(p): g for p, g in zip([p for p in parameters if p.requires_grad], pulls)}
    used = [p for p in parameters if p.grad is not None]
    return parts, share_of_pulls([pulled[id(p)] for p in used], used, shard)


def optimizer_step(
    learner: Learner,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    grad_clip: float | None,
) -> None:
    """Clip the meta-gradient in `.grad` (trainer.grad_clip), step the optimizer and the schedule."""
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(learner.parameters(), grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
