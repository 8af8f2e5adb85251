"""Seconds per step, peak memory of a step, and the projected wall time of a whole preset.

Peak memory on a GPU is the CUDA allocator's high-water mark over the measured steps (everything
allocated: weights, optimizer state, the meta-batch, activations; not the CUDA context or the
allocator's cached free blocks, which `reserved` includes). On a CPU, `LiveBytes` follows every
tensor storage that torch creates and frees during the steps and adds the weights and optimizer
state that were alive before them: the same quantity, counted from torch's own operations.
"""

from __future__ import annotations

import statistics
import time
import weakref
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from conml.data.episode_source import EpisodeSource
from conml.evaluate import evaluate
from conml.gpu_check.presets import Built, last_meta_batches
from conml.training_step import meta_gradient, optimizer_step

GIB = 2**30


class LiveBytes(TorchDispatchMode):
    """The bytes of tensor storages created inside the mode and still alive, and their peak.

    Each new storage is counted once (views share it) and released when torch frees it: storages
    keep their Python object alive as long as they live, so a weak reference's finaliser fires then.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sizes: dict[int, int] = {}
        self.current = self.peak = 0

    def _free(self, key: int) -> None:
        self.current -= self.sizes.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor) and value.device.type != "meta":
                storage = value.untyped_storage()
                key = storage._cdata
                if key not in self.sizes:
                    self.sizes[key] = storage.nbytes()
                    self.current += self.sizes[key]
                    weakref.finalize(storage, self._free, key)
        self.peak = max(self.peak, self.current)
        return out


def state_bytes(built: Built) -> int:
    """Bytes of the learner's parameters and buffers and of the optimizer's state, each storage once."""
    tensors = [*built.learner.parameters(), *built.learner.buffers()]
    tensors += [t for state in built.optimizer.state.values() for t in state.values() if isinstance(t, torch.Tensor)]
    return sum({t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in tensors}.values())


@dataclass
class StepMeasurement:
    seconds_per_step: float
    peak_bytes: int
    reserved_bytes: int | None
    examples_per_task: int  # support + query examples of the largest measured task (padded)


def train_step(built: Built, batch) -> None:
    """One meta-training step of the preset, the trainer's own (conml/training_step.py)."""
    meta_gradient(built.objective, built.learner, batch, built.task_chunk)
    optimizer_step(built.learner, built.optimizer, built.scheduler, built.cfg.trainer.grad_clip)


def measure_steps(built: Built, steps: int) -> StepMeasurement:
    """One warm-up step (autotuning, optimizer state), then `steps` timed steps with their peak memory."""
    device = built.device
    batches = last_meta_batches(built, steps + 1)
    train_step(built, next(batches))
    _synchronize(device)
    times, examples, tracker = [], 0, None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        tracker = LiveBytes().__enter__()
    try:
        for _ in range(steps):
            started = time.perf_counter()
            batch = next(batches)
            train_step(built, batch)
            _synchronize(device)
            times.append(time.perf_counter() - started)
            examples = max(examples, batch.support.num_examples + batch.query.num_examples)
    finally:
        if tracker is not None:
            tracker.__exit__(None, None, None)
    if device.type == "cuda":
        peak, reserved = torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)
    else:
        peak, reserved = state_bytes(built) + tracker.peak, None
    return StepMeasurement(statistics.median(times), peak, reserved, examples)


def step_peak_bytes(built: Built) -> tuple[int, int]:
    """Peak bytes of the run's last meta-training step on the CPU, in the steady state of training,
    and the bytes of its meta-batch (the tasks' inputs and labels).

    Sampling and the meta-gradient run under `LiveBytes`; the optimizer step runs after it (its
    state, created on a first step, is added as the state every later step starts with; its own
    temporaries come after the activations are freed). No warm-up step is needed.
    """
    batches = last_meta_batches(built, 1)
    with LiveBytes() as tracker:
        batch = next(batches)
        meta_gradient(built.objective, built.learner, batch, built.task_chunk)
    built.optimizer.step()
    tensors = [t for tasks in (batch.support, batch.query) for t in (tasks.x, tasks.y, tasks.mask) if t is not None]
    return state_bytes(built) + tracker.peak, sum(t.numel() * t.element_size() for t in tensors)


def eval_seconds_per_task(built: Built) -> float:
    """Seconds to meta-test one validation task, timed on a batch of `eval.batch_size` tasks."""
    size = built.cfg.eval.batch_size
    evaluate(built.learner, built.source, "val", size, size, built.device, progress=False)  # warm-up
    _synchronize(built.device)
    started = time.perf_counter()
    evaluate(built.learner, built.source, "val", size, size, built.device, progress=False)
    _synchronize(built.device)
    return (time.perf_counter() - started) / size


def projected_seconds(
    cfg: DictConfig, test_sets: int, seconds_per_step: float, seconds_per_eval_task: float
) -> tuple[float, float]:
    """(training, training + validation + meta-testing) of the whole preset `cfg` at these rates.

    Runs with early stopping (`trainer.patience`) may end sooner: this is their full step budget.
    """
    trainer, evaluation = cfg.trainer, cfg.eval
    steps = trainer.steps
    validations = steps // trainer.val_every + (1 if steps % trainer.val_every else 0)
    tasks = validations * trainer.val_episodes + test_sets * len(evaluation.shots or [None]) * evaluation.episodes
    training = steps * seconds_per_step
    return training, training + tasks * seconds_per_eval_task


def test_set_count(source: EpisodeSource) -> int:
    """Meta-test sets of a source: one per Meta-Dataset source or same-different task, else one."""
    test_sets = source.test_sets()
    return 1 if test_sets is None else len(test_sets)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
