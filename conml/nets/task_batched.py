"""The fast path for running a network with a separate parameter set per task, all tasks in one pass.

A net takes it by declaring it: it subclasses `TaskBatched` (the project's MLP, Conv-4, ResNet-12
and Kim CNNs do). `conml.nets.task_functional.task_call` runs declared nets here and every other
net with `torch.func.functional_call`; the declaration, not the net's structure, decides, and the
results are the same either way: those of `functional_call(net, weights_t, x_t)` for each task t,
in the train/eval mode the net is in. This path is only faster.

Tasks are folded into the batch instead of looped over: per-task linear layers become one batched
matmul, per-task convolutions one grouped convolution (groups = tasks), and per-task BatchNorm one
`F.batch_norm` over tasks x channels. Everything is differentiated by ordinary autograd, so
second-order meta-gradients are exact. The grouped convolution has its own double backward (see
`_GroupedConv2d`), so a meta-iteration costs the same number of kernels whatever the number of tasks.

BatchNorm2d behaves as the module does: without running statistics (track_running_stats=False, as
in Conv-4 and ResNet-12) it normalises with each task's batch statistics in both modes; with them,
eval mode uses the running statistics, and training mode each task's batch statistics while the
running statistics are updated as if the tasks had run through the module one after another.

Between consecutive image layers (conv, BatchNorm, activations, pooling) activations stay folded
as [n, T*C, H, W], tasks as channel groups, so a Conv-4 body costs one layout change in and one
out rather than two per layer. A net moved to `torch.channels_last` runs its convolutions in that
layout (faster with tensor cores).

A parameter given without the task axis ([*shape] instead of [T, *shape]) is shared by all tasks:
metric learners embed every task with the same weights, and per-task BatchNorm statistics are all
that differ between tasks. A shared convolution then runs as one dense convolution over the
folded activations viewed as [n*T, C, H, W] (the same memory), which is cheaper than a grouped one.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

# Parameter-free layers that treat every channel of an image on its own, so they also run on the
# folded [n, T*C, H, W] layout unchanged.
_CHANNELWISE = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.ELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Identity,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Dropout,
)
# Layers that hold no parameters act on each example independently, so they run on [T*n, ...].
_PARAMETER_FREE = (*_CHANNELWISE, nn.Flatten)
_KNOWN = (nn.Sequential, nn.Conv2d, nn.BatchNorm2d, nn.Linear, *_PARAMETER_FREE)


class TaskBatched:
    """Declares that a net runs on this module's fast path (`task_call` reads the declaration).

    Subclass it beside the module class, e.g. `class ConvNet(nn.Sequential, TaskBatched)`. The net
    must be made of what `task_forward` runs: `nn.Sequential`, `Linear`, `Conv2d` (numeric zero
    padding), `BatchNorm2d`, parameter-free activations, pooling, `Flatten` and `Dropout`, or modules
    with their own `task_forward(params, x, prefix)`; anything else raises a TypeError on the first call.
    """


def task_params(net: nn.Module, num_tasks: int) -> dict[str, Tensor]:
    """The net's parameters repeated for each task as views: {name: [T, *shape]}."""
    return {name: p.unsqueeze(0).expand(num_tasks, *p.shape) for name, p in net.named_parameters()}


def task_forward(module: nn.Module, params: Mapping[str, Tensor], x: Tensor, prefix: str = "") -> Tensor:
    """module(x) for every task at once: params[name] is [T, *shape] or shared [*shape], x is [T, n, *features]."""
    tasks = x.shape[0]
    out, folded = _forward(module, params, x, prefix, tasks, folded=False)
    return _unfold(out, tasks) if folded else out


def _forward(
    module: nn.Module, params: Mapping[str, Tensor], x: Tensor, prefix: str, tasks: int, folded: bool
) -> tuple[Tensor, bool]:
    """One module on activations that are task-major [T, n, ...] or, when `folded`, [n, T*C, H, W]."""
    if hasattr(module, "task_forward"):  # a module that says how it runs per task (ResNet-12's blocks)
        return module.task_forward(params, _unfold(x, tasks) if folded else x, prefix), False
    kind = _known_kind(module)
    if kind is nn.Sequential:
        for name, child in module.named_children():
            x, folded = _forward(child, params, x, f"{prefix}{name}.", tasks, folded)
        return x, folded
    if kind is nn.Conv2d:
        return _conv2d(
            module, x if folded else _fold(x), params[prefix + "weight"], params.get(prefix + "bias"), tasks
        ), True
    if kind is nn.BatchNorm2d:
        weight, bias = (_per_task(params.get(prefix + key), 1, tasks) for key in ("weight", "bias"))
        return _batch_norm(module, x if folded else _fold(x), weight, bias, tasks), True
    if folded and kind in _CHANNELWISE:
        return module(x), True
    if folded:
        x = _unfold(x, tasks)
    if kind is nn.Linear:
        weight, bias = params[prefix + "weight"], params.get(prefix + "bias")
        if weight.dim() == 2:  # shared by all tasks
            return F.linear(x, weight, bias), False
        return _linear(x, weight, bias), False
    if kind in _PARAMETER_FREE:
        return module(x.flatten(0, 1)).unflatten(0, x.shape[:2]), False
    raise TypeError(
        f"task_forward does not know how to run {type(module).__name__} ('{prefix.rstrip('.')}') with "
        "per-task parameters; give the module a task_forward(params, x, prefix) method, or do not declare "
        "the net TaskBatched: conml.nets.task_functional.task_call runs any other net with torch.func."
    )


def _known_kind(module: nn.Module) -> type[nn.Module] | None:
    """The layer `_forward` runs `module` as; None for a subclass with a forward of its own, which it cannot."""
    kind = next((known for known in _KNOWN if isinstance(module, known)), None)
    return kind if kind is not None and type(module).forward is kind.forward else None


def _per_task(param: Tensor | None, dims: int, tasks: int) -> Tensor | None:
    """A parameter of `dims` dimensions shared by all tasks, repeated per task ([T, *shape])."""
    if param is None or param.dim() > dims:
        return param
    return param.unsqueeze(0).expand(tasks, *param.shape)


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    # x [T, n, ..., in] with weight [T, out, in]: one batched matmul over tasks.
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    out = flat @ weight.transpose(1, 2)
    if bias is not None:
        out = out + bias.unsqueeze(1)
    return out.reshape(*x.shape[:-1], weight.shape[1])


def _fold(x: Tensor) -> Tensor:
    """[T, n, C, H, W] -> [n, T*C, H, W]: tasks become channel groups."""
    tasks, n = x.shape[:2]
    return x.transpose(0, 1).reshape(n, tasks * x.shape[2], *x.shape[3:])


def _unfold(x: Tensor, tasks: int) -> Tensor:
    """[n, T*C, H, W] -> [T, n, C, H, W] (a view)."""
    n = x.shape[0]
    return x.reshape(n, tasks, -1, *x.shape[2:]).transpose(0, 1)


def _channels_last(module: nn.Module) -> bool:
    """Whether the net was moved to channels_last (`net.to(memory_format=torch.channels_last)`)."""
    weight = module.weight
    return weight.dim() == 4 and not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)


def _conv2d(module: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None, tasks: int) -> Tensor:
    if module.padding_mode != "zeros" or isinstance(module.padding, str):
        raise TypeError(
            f"task_forward runs Conv2d with zero padding given as numbers; this one has "
            f"padding={module.padding!r}, padding_mode={module.padding_mode!r}."
        )
    if weight.dim() == 4:  # shared by all tasks: one dense convolution over n*T images
        images = x.unflatten(1, (tasks, -1)).flatten(0, 1)
        if _channels_last(module):
            images = images.contiguous(memory_format=torch.channels_last)
        out = F.conv2d(images, weight, bias, module.stride, module.padding, module.dilation, module.groups)
        return out.unflatten(0, (x.shape[0], tasks)).flatten(1, 2)
    weight = weight.reshape(-1, *weight.shape[2:])
    if _channels_last(module):
        x, weight = (
            x.contiguous(memory_format=torch.channels_last),
            weight.contiguous(memory_format=torch.channels_last),
        )
    geometry = (tuple(module.stride), tuple(module.padding), tuple(module.dilation), tasks * module.groups)
    return _GroupedConv2d.apply(x, weight, None if bias is None else bias.reshape(-1), geometry)


def _convolution(x: Tensor, weight: Tensor, bias: Tensor | None, geometry: tuple) -> Tensor:
    stride, padding, dilation, groups = geometry
    return torch.convolution(x, weight, bias, stride, padding, dilation, False, (0, 0), groups)


def _convolution_backward(
    grad_out: Tensor, x: Tensor, weight: Tensor, geometry: tuple, want_x: bool, want_weight: bool
):
    stride, padding, dilation, groups = geometry
    grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad_out, x, weight, None, stride, padding, dilation, False, (0, 0), groups, (want_x, want_weight, False)
    )
    return grad_x, grad_weight


class _GroupedConv2d(torch.autograd.Function):
    """A convolution whose double backward is a few grouped convolutions, whatever the groups.

    PyTorch's own double backward of a grouped convolution computes one of its terms group by
    group (a convolution and two slices per task), which would undo task batching in
    second-order MAML. The first backward is the native one.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, geometry: tuple) -> Tensor:
        device = x.device.type
        if torch.is_autocast_enabled(device):
            # Cast here, as autocast would inside the convolution, so that what backward sees
            # (saved tensors, incoming gradients) has one dtype.
            dtype = torch.get_autocast_dtype(device)
            x, weight, bias = (None if t is None else t.to(dtype) for t in (x, weight, bias))
        ctx.save_for_backward(x, weight)
        ctx.geometry = geometry
        return _convolution(x, weight, bias, geometry)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        want_x, want_weight, want_bias = ctx.needs_input_grad[:3]
        grad_x, grad_weight = _ConvolutionBackward.apply(grad_out, x, weight, ctx.geometry, want_x, want_weight)
        grad_bias = grad_out.sum((0, 2, 3)) if want_bias else None
        return grad_x, grad_weight, grad_bias, None


class _ConvolutionBackward(torch.autograd.Function):
    """(grad_x, grad_weight) of a convolution, with the adjoint of each written as grouped convolutions.

    grad_x = d<g, conv(x, w)>/dx and grad_weight = d<g, conv(x, w)>/dw are linear in g, x and w, so
    <gg_x, grad_x> = <g, conv(gg_x, w)> and <gg_w, grad_weight> = <g, conv(x, gg_w)>; their
    derivatives are convolutions and first backwards of convolutions.
    """

    @staticmethod
    def forward(ctx, grad_out: Tensor, x: Tensor, weight: Tensor, geometry: tuple, want_x: bool, want_weight: bool):
        ctx.save_for_backward(grad_out, x, weight)
        ctx.geometry = geometry
        return _convolution_backward(grad_out, x, weight, geometry, want_x, want_weight)

    @staticmethod
    @once_differentiable
    def backward(ctx, gg_x: Tensor | None, gg_weight: Tensor | None):
        grad_out, x, weight = ctx.saved_tensors
        geometry = ctx.geometry
        d_grad_out = d_x = d_weight = None
        if ctx.needs_input_grad[0]:
            terms = [_convolution(gg_x, weight, None, geometry)] if gg_x is not None else []
            if gg_weight is not None:
                terms.append(_convolution(x, gg_weight, None, geometry))
            d_grad_out = sum(terms) if terms else None
        if ctx.needs_input_grad[1] and gg_weight is not None:
            d_x = _convolution_backward(grad_out, x, gg_weight, geometry, True, False)[0]
        if ctx.needs_input_grad[2] and gg_x is not None:
            d_weight = _convolution_backward(grad_out, gg_x, weight, geometry, False, True)[1]
        return d_grad_out, d_x, d_weight, None, None, None


def _batch_norm(module: nn.BatchNorm2d, x: Tensor, weight: Tensor | None, bias: Tensor | None, tasks: int) -> Tensor:
    """`module` on each task's channels of x [n, T*C, H, W], as nn.BatchNorm2d.forward would on each task alone."""
    weight, bias = (None if p is None else p.reshape(-1) for p in (weight, bias))
    if not module.training and module.running_mean is not None:
        # Eval mode with running statistics: the same ones for every task.
        mean, var = (stat.repeat(tasks) for stat in (module.running_mean, module.running_var))
        return F.batch_norm(x, mean, var, weight, bias, training=False, eps=module.eps)
    out = F.batch_norm(x, None, None, weight, bias, training=True, eps=module.eps)
    if module.training and module.track_running_stats and module.running_mean is not None:
        _update_running_statistics(module, x.detach(), tasks)
    return out


@torch.no_grad()
def _update_running_statistics(module: nn.BatchNorm2d, x: Tensor, tasks: int) -> None:
    """The running statistics T calls of the module leave, one task after another, in one update.

    Task t's call sets r <- (1 - f_t) r + f_t s_t, with f_t the momentum (or 1 / (k + t + 1) after k
    batches when momentum is None: a cumulative average); so after T calls the old r keeps
    prod_t (1 - f_t) and s_t enters with f_t prod_{u>t} (1 - f_u). A few kernels, whatever T, and no
    read of num_batches_tracked to the host."""
    x = x.to(module.running_mean.dtype)
    means = x.mean((0, 2, 3)).view(tasks, -1)
    variances = x.var((0, 2, 3), correction=1).view(tasks, -1)  # unbiased, as the module keeps
    like = {"dtype": means.dtype, "device": means.device}
    if module.momentum is not None:
        factors = torch.full((tasks,), module.momentum, **like)
    elif module.num_batches_tracked is not None:
        factors = 1.0 / (module.num_batches_tracked + torch.arange(1, tasks + 1, device=means.device)).to(**like)
    else:
        return  # the module's factor is then 0: nothing changes
    kept = (1 - factors).flip(0).cumprod(0).flip(0)  # kept[t] = prod_{u>=t} (1 - f_u)
    weights = factors * torch.cat([kept[1:], torch.ones(1, **like)])
    module.running_mean.mul_(kept[0]).add_(weights @ means)
    module.running_var.mul_(kept[0]).add_(weights @ variances)
    if module.num_batches_tracked is not None:
        module.num_batches_tracked.add_(tasks)
