"""task_chunk=auto: the largest task chunk whose training step fits a GPU's memory budget, measured
by taking that step (conml/training_step.py) with chunks of one and two tasks."""

from __future__ import annotations

from typing import Callable

import torch

from conml.checkpoint import restore_rng_states, rng_states
from conml.episodes import EpisodeBatch
from conml.errors import ConfigError
from conml.learners.base import Learner
from conml.objective import ConMLObjective
from conml.training_step import meta_gradient

# task_chunk=auto without trainer.memory_budget_gb plans for this fraction of the GPU's memory.
DEFAULT_BUDGET_FRACTION = 0.9


def auto_task_chunk(
    objective: ConMLObjective,
    learner: Learner,
    optimizer: torch.optim.Optimizer,
    batch: Callable[[], EpisodeBatch],
    device: torch.device,
    budget_gb: float | None,
) -> tuple[int | None, str]:
    """task_chunk=auto: the largest chunk whose step fits the memory budget (None: the whole meta-batch
    fits), and what was measured, in words.

    On a GPU, peak memory grows linearly with the chunk, base + chunk * per_task; both come from steps
    with chunks of 1 and 2 tasks on `batch()`, plus two copies of the trained parameters when the
    optimizer holds no state yet (Adam's moments, allocated at its first step). Gradients, random
    states and buffers are left as they were. On a CPU, whose memory is not measured, no chunks.
    """
    if device.type != "cuda":
        return None, "no chunks on a CPU"
    budget = (
        budget_gb * 2**30
        if budget_gb is not None
        else DEFAULT_BUDGET_FRACTION * torch.cuda.get_device_properties(device).total_memory
    )
    tasks = batch()
    trained = [p for p in learner.parameters() if p.requires_grad]
    reserved = 0 if optimizer.state else 2 * sum(p.numel() * p.element_size() for p in trained)
    states, buffers = rng_states(), [b.clone() for b in learner.buffers()]

    def peak(size: int) -> int:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        meta_gradient(objective, learner, tasks, size)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) + reserved

    try:
        return chunk_for_budget(peak, tasks.num_tasks, budget)
    finally:
        optimizer.zero_grad(set_to_none=True)
        restore_rng_states(states)
        for buffer, saved in zip(learner.buffers(), buffers):
            buffer.copy_(saved)
        torch.cuda.reset_peak_memory_stats(device)  # the run's reported peak is training's


def chunk_for_budget(peak_bytes: Callable[[int], float], local: int, budget_bytes: float) -> tuple[int | None, str]:
    """The largest chunk of `local` tasks whose peak, linear in the chunk, stays within `budget_bytes`,
    from the peaks with 1 and 2 tasks per chunk; None when the whole meta-batch fits."""
    gib = 2.0**30
    one = peak_bytes(1)
    per_task = max(peak_bytes(2) - one, 1.0) if local > 1 else 0.0
    measured = f"{one / gib:.2f} GB with 1 task per chunk, {per_task / gib:.2f} GB per further task, budget {budget_bytes / gib:.1f} GB"
    if one > budget_bytes:
        raise ConfigError(
            f"trainer.task_chunk=auto: even one task per chunk needs {one / gib:.2f} GB of GPU memory, more than the "
            f"budget of {budget_bytes / gib:.1f} GB (trainer.memory_budget_gb, or 90% of the GPU's). Raise the budget, "
            "use a GPU with more memory, or make tasks smaller (fewer query examples, a smaller backbone)."
        )
    fits = local if per_task == 0 else int((budget_bytes - one) // per_task) + 1
    return (None if fits >= local else fits), measured
