"""Run any network with a separate parameter set per task; the one place that chooses how.

`task_call(net, params, x)` is `functional_call(net, params_t, x[t])` for every task t, in the
train/eval mode the net is in: params[name] is [T, *shape], or [*shape] for a parameter shared by
all tasks. That is its meaning whichever way it runs; the ways differ only in speed. How a net runs
is declared by the net, never inferred from its structure, so adding a layer to a net cannot
silently change its numbers. `task_path(net)` says which way:

- `grouped`: a net that subclasses `conml.nets.task_batched.TaskBatched` (the project's MLP, Conv-4,
  ResNet-12 and Kim CNNs) runs with tasks folded into grouped convolutions and batched matmuls.
- `vmap`: any other net runs `functional_call` under `torch.func.vmap` over tasks, with
  `randomness="different"` so that each task draws its own dropout masks. Ordinary autograd
  differentiates through it, to second order (MAML's inner loop).
- `loop`: `functional_call` task by task, for what vmap cannot run: a net containing a module that
  subclasses `TaskByTask` (data-dependent control flow, say), and modules that update buffers in the
  forward (BatchNorm tracking running statistics, in training mode: each task updates them in turn).

A net vmap fails on that declares neither is refused with a `ConfigError` naming `TaskByTask`,
rather than switched to the loop behind the caller's back: the choice stays with the net, in no
state kept between calls, and a run fails at start-up (`conml/checks/fit.py`) instead of running
slower than it says.
"""

from __future__ import annotations

import enum
from typing import Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from conml.errors import ConfigError
from conml.nets.task_batched import TaskBatched, task_forward


class TaskByTask:
    """Declares that a module cannot run under `torch.func.vmap` (data-dependent control flow, an
    operation without a batching rule): a net containing it runs its tasks one at a time. Subclass
    it beside the module class, e.g. `class Branching(nn.Module, TaskByTask)`."""


class TaskPath(enum.Enum):
    grouped = "grouped"
    vmap = "vmap"
    loop = "loop"


def task_path(net: nn.Module) -> TaskPath:
    """How `task_call` runs `net` now (training mode matters: it decides whether BatchNorm writes buffers)."""
    if isinstance(net, TaskBatched):
        return TaskPath.grouped
    if any(isinstance(module, TaskByTask) or _writes_buffers(module) for module in net.modules()):
        return TaskPath.loop
    return TaskPath.vmap


def task_call(net: nn.Module, params: Mapping[str, Tensor], x: Tensor, path: TaskPath | None = None) -> Tensor:
    """net(x[t]) with parameters params[name][t] for every task t: x is [T, n, *features], the result [T, n, ...].
    `path` overrides `task_path(net)`, to compare the ways (tests, benchmarks): their results are the same."""
    path = task_path(net) if path is None else path
    if path is TaskPath.grouped:
        return task_forward(net, params, x)
    task_dims = _task_dims(net, params)
    if path is TaskPath.loop:
        return _looped(net, params, task_dims, x)
    try:
        return _vmapped(net, params, task_dims, x)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[0]
    # A fault of the net itself (a shape that does not fit, say) raises here, as it would without vmap.
    _looped(net, params, task_dims, x[:1])
    raise ConfigError(
        f"{type(net).__name__} cannot run under torch.func.vmap ({reason}), which runs a net's tasks together "
        "when it does not declare how they run. Declare it: subclass conml.nets.task_functional.TaskByTask in "
        "the module vmap cannot run (or in a wrapper of the net) to run its tasks one at a time, or "
        "conml.nets.task_batched.TaskBatched in a net made of the layers that fast path knows."
    ) from None


def _writes_buffers(module: nn.Module) -> bool:
    """BatchNorm (or InstanceNorm) that tracks running statistics updates them in place in training mode."""
    return (
        module.training
        and getattr(module, "track_running_stats", False)
        and getattr(module, "running_mean", None) is not None
    )


def _task_dims(net: nn.Module, params: Mapping[str, Tensor]) -> dict[str, int | None]:
    """0 for a parameter given per task ([T, *shape]), None for one shared by all tasks ([*shape])."""
    own = dict(net.named_parameters())
    return {name: 0 if name not in own or p.dim() > own[name].dim() else None for name, p in params.items()}


def _vmapped(net: nn.Module, params: Mapping[str, Tensor], task_dims: dict[str, int | None], x: Tensor) -> Tensor:
    def one_task(weights: dict[str, Tensor], inputs: Tensor) -> Tensor:
        return functional_call(net, weights, (inputs,))

    return vmap(one_task, in_dims=(task_dims, 0), randomness="different")(dict(params), x)


def _looped(net: nn.Module, params: Mapping[str, Tensor], task_dims: dict[str, int | None], x: Tensor) -> Tensor:
    def weights(t: int) -> dict[str, Tensor]:
        return {name: p if task_dims[name] is None else p[t] for name, p in params.items()}

    return torch.stack([functional_call(net, weights(t), (x[t],)) for t in range(x.shape[0])])
