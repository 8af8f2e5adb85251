"""Run any network with a separate parameter set per task; the one place that chooses how.

`task_call(net, params, x)` is net(x[t]) with the parameters params[name][t], for every task t at
once; params[name] is [T, *shape], or [*shape] for a parameter shared by all tasks. Learners call it
with the net they were given, whatever its modules. `task_path(net)` says which way it runs:

- `grouped`, the fast path: a net made only of layers `conml.nets.task_batched` knows (the project's
  Conv-4, ResNet-12, Kim CNNs and MLP) runs with tasks folded into the batch: grouped convolutions,
  batched matmuls, one BatchNorm over tasks x channels.
- `vmap`: any other net runs `torch.func.functional_call` under `torch.func.vmap` over tasks, with
  `randomness="different"` so that each task draws its own dropout masks. Ordinary autograd
  differentiates through it, to second order (MAML's inner loop).
- `loop`: `functional_call` task by task, where vmap cannot run the net: modules that write buffers
  during the forward (BatchNorm tracking running statistics, in training mode), and nets that fail
  under vmap (data-dependent control flow, in-place writes into buffers, an operation without a
  batching rule). Such a failure is caught once per net, with a warning, and the random state
  restored, so the net's results are those of the loop from the start.

BatchNorm: the fast path normalises a BatchNorm2d with each task's own batch statistics in training
and in evaluation (transductive, as MAML implementations do). The other paths run every module as
written: in training mode a BatchNorm uses the task's batch statistics (and the loop updates its
running statistics task after task); in eval mode one that tracks running statistics uses them.
On every path a task's outputs do not depend on the other tasks of the batch.
"""

from __future__ import annotations

import enum
import warnings
import weakref
from typing import Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from conml.nets.task_batched import fits, task_forward

# Nets that failed under vmap once: they run task by task from then on.
_NOT_VMAPPABLE: weakref.WeakSet[nn.Module] = weakref.WeakSet()


class TaskPath(enum.Enum):
    grouped = "grouped"
    vmap = "vmap"
    loop = "loop"


def task_path(net: nn.Module) -> TaskPath:
    """How `task_call` runs `net` now (training mode matters: it decides whether BatchNorm writes buffers)."""
    if fits(net):
        return TaskPath.grouped
    if net in _NOT_VMAPPABLE or any(_writes_buffers(module) for module in net.modules()):
        return TaskPath.loop
    return TaskPath.vmap


def task_call(net: nn.Module, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """net(x[t]) with parameters params[name][t] for every task t: x is [T, n, *features], the result [T, n, ...]."""
    path = task_path(net)
    if path is TaskPath.grouped:
        return task_forward(net, params, x)
    task_dims = _task_dims(net, params)
    if path is TaskPath.loop:
        return _looped(net, params, task_dims, x)
    random_state = _random_state(x.device)
    try:
        return _vmapped(net, params, task_dims, x)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[0]
    _set_random_state(random_state, x.device)
    out = _looped(net, params, task_dims, x)  # a fault of the net itself raises here
    _NOT_VMAPPABLE.add(net)
    warnings.warn(
        f"{type(net).__name__} cannot run under torch.func.vmap ({reason}); its tasks run one at a time.",
        RuntimeWarning,
        stacklevel=2,
    )
    return out


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


def _random_state(device: torch.device) -> Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_random_state(state: Tensor, device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)
