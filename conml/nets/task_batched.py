"""Run a network with a separate parameter set per task, all tasks in one pass.

Tasks are folded into the batch instead of looped over: per-task linear layers become one batched
matmul, per-task convolutions one grouped convolution (groups = tasks), and per-task BatchNorm one
`F.batch_norm` over tasks x channels. Every op is an ordinary autograd op, so second-order
meta-gradients are exact, which `torch.func.vmap` over native BatchNorm does not guarantee.
"""

from __future__ import annotations

from typing import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

# Layers that hold no parameters act on each example independently, so they run on [T*n, ...].
_PARAMETER_FREE = (
    nn.ReLU, nn.LeakyReLU, nn.GELU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.Identity,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout,
)


def task_params(net: nn.Module, num_tasks: int) -> dict[str, Tensor]:
    """The net's parameters repeated for each task as views: {name: [T, *shape]}."""
    return {name: p.unsqueeze(0).expand(num_tasks, *p.shape) for name, p in net.named_parameters()}


def task_forward(module: nn.Module, params: Mapping[str, Tensor], x: Tensor, prefix: str = "") -> Tensor:
    """module(x) for every task at once: params[name] is [T, *shape], x is [T, n, *features]."""
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            x = task_forward(child, params, x, f"{prefix}{name}.")
        return x
    if isinstance(module, nn.Linear):
        return _linear(x, params[prefix + "weight"], params.get(prefix + "bias"))
    if isinstance(module, nn.Conv2d):
        return _conv2d(module, x, params[prefix + "weight"], params.get(prefix + "bias"))
    if isinstance(module, nn.BatchNorm2d):
        return _batch_norm(module, x, params.get(prefix + "weight"), params.get(prefix + "bias"))
    if hasattr(module, "task_forward"):
        return module.task_forward(params, x, prefix)
    if isinstance(module, _PARAMETER_FREE):
        return module(x.flatten(0, 1)).unflatten(0, x.shape[:2])
    raise TypeError(
        f"task_forward does not know how to run {type(module).__name__} ('{prefix.rstrip('.')}') with "
        "per-task parameters; give the module a task_forward(params, x, prefix) method."
    )


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    # x [T, n, ..., in] with weight [T, out, in]: one batched matmul over tasks.
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    out = flat @ weight.transpose(1, 2)
    if bias is not None:
        out = out + bias.unsqueeze(1)
    return out.reshape(*x.shape[:-1], weight.shape[1])


def _to_channels(x: Tensor) -> Tensor:
    """[T, n, C, H, W] -> [n, T*C, H, W]: tasks become channel groups."""
    tasks, n = x.shape[:2]
    return x.transpose(0, 1).reshape(n, tasks * x.shape[2], *x.shape[3:])


def _from_channels(x: Tensor, tasks: int) -> Tensor:
    """[n, T*C, H, W] -> [T, n, C, H, W]."""
    n = x.shape[0]
    return x.reshape(n, tasks, -1, *x.shape[2:]).transpose(0, 1)


def _conv2d(module: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    tasks = x.shape[0]
    out = F.conv2d(
        _to_channels(x),
        weight.reshape(-1, *weight.shape[2:]),
        None if bias is None else bias.reshape(-1),
        module.stride,
        module.padding,
        module.dilation,
        groups=tasks * module.groups,
    )
    return _from_channels(out, tasks)


def _batch_norm(module: nn.BatchNorm2d, x: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    # Statistics of each task's own examples (transductive, as MAML implementations do at train and test).
    tasks = x.shape[0]
    out = F.batch_norm(
        _to_channels(x),
        None,
        None,
        None if weight is None else weight.reshape(-1),
        None if bias is None else bias.reshape(-1),
        training=True,
        eps=module.eps,
    )
    return _from_channels(out, tasks)
