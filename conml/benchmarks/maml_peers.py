"""The MAML implementations under comparison; each leaves one meta-batch's meta-gradient in `.grad`.

- `ProjectMAML`: conml's learner and objective (tasks folded into channel groups).
- `PerTaskLoopMAML`: the learn2learn recipe written out: for each task, adapt a functional copy of
  the weights with `autograd.grad`, then back-propagate its query loss. With `conml` it also adapts
  on support ∪ query and adds the contrastive term with explicit loops; it is the reference of the
  correctness gates.
- `HigherMAML`: the same loop with `higher.innerloop_ctx`.
- `TorchFuncMAML`: the pattern of PyTorch's functorch MAML-Omniglot example: one task's inner loop
  and query loss as a pure function of a parameter dict (`functional_call`, `torch.func.grad`),
  `vmap`ped over the tasks of the meta-batch, with BatchNorm's affine transform written out;
  `ExampleTorchFuncMAML` runs BatchNorm as the example does, which vmap gets wrong at second order.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from conml.benchmarks.setups import MAMLSetup
from conml.episodes import EpisodeBatch
from conml.learners.maml import MAML
from conml.objective import ConMLObjective, ConMLSettings, LossParts
from conml.performance import PerformanceSettings, Precision, apply_backend_flags, autocast
from conml.task_kind import CLASSIFICATION, TaskKind
from conml.training_step import meta_gradient

# ConML's default weight of the contrastive term.
CONML_LAMBDA = ConMLSettings().lam
# IEEE float32 on a GPU: what every peer runs with, and the reference for the faster settings.
STRICT_FLOAT32 = PerformanceSettings(precision=Precision.float32, channels_last=False, cudnn_benchmark=True)


class MetaGradient(Protocol):
    """An implementation under test."""

    module: nn.Module

    def backward(self, batch: EpisodeBatch) -> None:
        """Accumulate the meta-gradient of `batch` into `.grad` of `module`'s parameters."""


class ProjectMAML:
    """conml.learners.maml.MAML driven by conml.objective.ConMLObjective, as the trainer does.

    `settings` chooses the memory layout and autocast, as `conml.performance` does for a run.
    """

    def __init__(self, net: nn.Module, setup: MAMLSetup, settings: PerformanceSettings = STRICT_FLOAT32):
        self.settings = settings
        self.module = MAML(
            net,
            setup.kind,
            inner_steps=setup.inner_steps,
            inner_lr=setup.inner_lr,
            first_order=setup.first_order,
            learn_inner_lr=False,
            eval_inner_steps=None,
            representation="weights",
        )
        self.device = next(net.parameters()).device
        if settings.channels_last:
            self.module.to(memory_format=torch.channels_last)
        conml = ConMLSettings(enabled=setup.conml, lam=CONML_LAMBDA)
        self.objective = ConMLObjective(conml, forward_context=lambda: autocast(settings, self.device))

    def parts(self, batch: EpisodeBatch) -> LossParts:
        return self.objective(self.module, batch)

    def loss(self, batch: EpisodeBatch) -> Tensor:
        return self.parts(batch).total

    def backward(self, batch: EpisodeBatch) -> None:
        """The trainer's meta-gradient (conml/training_step.py), all tasks at once."""
        meta_gradient(self.objective, self.module, batch)


class PerTaskLoopMAML:
    """One task at a time, functional weights, plain autograd (learn2learn's MAML recipe)."""

    def __init__(self, net: nn.Module, setup: MAMLSetup):
        self.module, self.setup = net, setup

    def _adapt(self, theta: dict[str, Tensor], x: Tensor, y: Tensor) -> dict[str, Tensor]:
        params = dict(theta)
        for _ in range(self.setup.inner_steps):
            loss = task_loss(self.setup.kind, functional_call(self.module, params, (x,)), y)
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=not self.setup.first_order)
            params = {name: p - self.setup.inner_lr * g for (name, p), g in zip(params.items(), grads)}
        return params

    def _task_loss(self, batch: EpisodeBatch, t: int) -> Tensor:
        s, q = batch.support, batch.query
        adapted = self._adapt(dict(self.module.named_parameters()), s.x[t], s.y[t])
        return task_loss(self.setup.kind, functional_call(self.module, adapted, (q.x[t],)), q.y[t])

    def loss(self, batch: EpisodeBatch) -> Tensor:
        if self.setup.conml:
            return self._conml_loss(batch)
        return torch.stack([self._task_loss(batch, t) for t in range(batch.num_tasks)]).mean()

    def backward(self, batch: EpisodeBatch) -> None:
        if self.setup.conml:
            self.loss(batch).backward()
            return
        # Back-propagating task by task frees each task's graph before the next one is built.
        for t in range(batch.num_tasks):
            (self._task_loss(batch, t) / batch.num_tasks).backward()

    def _conml_loss(self, batch: EpisodeBatch) -> Tensor:
        theta = dict(self.module.named_parameters())
        s, q = batch.support, batch.query
        episodic, support_vectors, whole_vectors = [], [], []
        for t in range(batch.num_tasks):
            adapted = self._adapt(theta, s.x[t], s.y[t])
            whole = self._adapt(theta, torch.cat([s.x[t], q.x[t]]), torch.cat([s.y[t], q.y[t]]))
            episodic.append(task_loss(self.setup.kind, functional_call(self.module, adapted, (q.x[t],)), q.y[t]))
            support_vectors.append(torch.cat([w.flatten() for w in adapted.values()]))
            whole_vectors.append(torch.cat([w.flatten() for w in whole.values()]))
        d_in = torch.stack([_cosine_distance(a, b) for a, b in zip(support_vectors, whole_vectors)]).mean()
        pairs = itertools.permutations(range(batch.num_tasks), 2)
        d_out = torch.stack([_cosine_distance(whole_vectors[i], whole_vectors[j]) for i, j in pairs]).mean()
        return torch.stack(episodic).mean() + CONML_LAMBDA * (d_in - d_out)


class HigherMAML:
    """One task at a time with `higher.innerloop_ctx` (facebookresearch/higher)."""

    def __init__(self, net: nn.Module, setup: MAMLSetup):
        if setup.conml:
            raise ValueError("the higher peer implements plain MAML only")
        with warnings.catch_warnings():  # higher 0.2.1 trips a SyntaxWarning on Python >= 3.8
            warnings.simplefilter("ignore", SyntaxWarning)
            import higher
        self.innerloop_ctx = higher.innerloop_ctx
        self.module, self.setup = net, setup
        self.inner_optimizer = torch.optim.SGD(net.parameters(), lr=setup.inner_lr)

    def backward(self, batch: EpisodeBatch) -> None:
        s, q = batch.support, batch.query
        for t in range(batch.num_tasks):
            with self.innerloop_ctx(
                self.module,
                self.inner_optimizer,
                copy_initial_weights=False,
                track_higher_grads=not self.setup.first_order,
            ) as (fast, inner):
                for _ in range(self.setup.inner_steps):
                    inner.step(task_loss(self.setup.kind, fast(s.x[t]), s.y[t]))
                loss = task_loss(self.setup.kind, fast(q.x[t]), q.y[t]) / batch.num_tasks
                if self.setup.first_order:
                    # Untracked fast weights: their query gradient is the first-order meta-gradient.
                    for p, g in zip(self.module.parameters(), torch.autograd.grad(loss, list(fast.parameters()))):
                        p.grad = g if p.grad is None else p.grad + g
                else:
                    loss.backward()


class TorchFuncMAML:
    """vmap over tasks of a functional inner loop (torch.func), then one backward of the mean query loss.

    Outer autograd sees through `torch.func.grad`, so the meta-gradient is second order unless the
    inner gradients are detached. BatchNorm without running statistics vmaps (each task normalises
    with its own batch statistics), but its affine transform is applied after `F.batch_norm`: with
    the weight and bias inside it, the second-order meta-gradient under vmap is wrong (torch 2.15,
    float64: 1e-2 of its largest entry off the per-task loop's, through BatchNorm's input; cf.
    pytorch/functorch#534). `ExampleTorchFuncMAML` keeps them inside, as PyTorch's example does.
    """

    def __init__(self, net: nn.Module, setup: MAMLSetup):
        if setup.conml:
            raise ValueError("the torch.func peer implements plain MAML only")
        if not isinstance(net, nn.Sequential):
            raise ValueError("the torch.func peer runs nn.Sequential nets, layer by layer")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in net.modules()):
            raise ValueError("BatchNorm that tracks running statistics writes buffers, which vmap cannot")
        self.module, self.setup = net, setup

    def _forward(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """The net as a pure function of `params`: each layer by `functional_call`, BatchNorm written out."""
        for name, layer in self.module.named_children():
            own = {key.removeprefix(f"{name}."): p for key, p in params.items() if key.startswith(f"{name}.")}
            if isinstance(layer, nn.BatchNorm2d):
                x = F.batch_norm(x, None, None, training=True, eps=layer.eps)
                if layer.affine:
                    x = x * own["weight"][:, None, None] + own["bias"][:, None, None]
            else:
                x = functional_call(layer, own, (x,))
        return x

    def _support_loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return task_loss(self.setup.kind, self._forward(params, x), y)

    def _query_loss(self, params: dict[str, Tensor], sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> Tensor:
        """One task: adapt on its support set, then the adapted weights' loss on its query set."""
        for _ in range(self.setup.inner_steps):
            grads = grad(self._support_loss)(params, sx, sy)
            if self.setup.first_order:
                grads = {name: g.detach() for name, g in grads.items()}
            params = {name: p - self.setup.inner_lr * grads[name] for name, p in params.items()}
        return task_loss(self.setup.kind, self._forward(params, qx), qy)

    def loss(self, batch: EpisodeBatch) -> Tensor:
        s, q = batch.support, batch.query
        params = dict(self.module.named_parameters())
        losses = vmap(self._query_loss, in_dims=(None, 0, 0, 0, 0))(params, s.x, s.y, q.x, q.y)
        return losses.mean()

    def backward(self, batch: EpisodeBatch) -> None:
        self.loss(batch).backward()


class ExampleTorchFuncMAML(TorchFuncMAML):
    """The same, with the whole net run by one `functional_call`, as PyTorch's MAML-Omniglot example
    runs it (BatchNorm's affine inside `F.batch_norm`): wrong at second order with BatchNorm, so its
    gate is optional and it is timed only where that gate passes."""

    def _forward(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.module, params, (x,))


def task_loss(kind: TaskKind, prediction: Tensor, y: Tensor) -> Tensor:
    """One task's mean loss: cross-entropy for classification, squared error for regression."""
    if kind is CLASSIFICATION:
        return F.cross_entropy(prediction, y)
    return F.mse_loss(prediction, y)


def _cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    return 1 - (a @ b) / (a.norm() * b.norm())


EXAMPLE_TORCH_FUNC = "torch.func vmap, BatchNorm affine inside"
IMPLEMENTATIONS: dict[str, type] = {
    "project": ProjectMAML,
    "higher": HigherMAML,
    "per-task loop": PerTaskLoopMAML,
    "torch.func vmap": TorchFuncMAML,
    EXAMPLE_TORCH_FUNC: ExampleTorchFuncMAML,
}


def build(name: str, net: nn.Module, setup: MAMLSetup) -> MetaGradient:
    """Implementation `name` on its own copy of `net`."""
    return IMPLEMENTATIONS[name](copy.deepcopy(net), setup)


def flat_meta_gradient(implementation: MetaGradient, batch: EpisodeBatch) -> Tensor:
    """The meta-gradient of one meta-batch, flattened over all parameters."""
    implementation.module.zero_grad(set_to_none=True)
    implementation.backward(batch)
    return torch.cat([p.grad.flatten() for p in implementation.module.parameters()])


def meta_iteration(
    implementation: MetaGradient, batch: EpisodeBatch, settings: PerformanceSettings = STRICT_FLOAT32
) -> Callable[[], None]:
    """One meta-training iteration (meta-gradient, then an Adam step) under `settings`' backend flags."""
    optimizer = torch.optim.Adam(implementation.module.parameters(), lr=1e-3)
    device = batch.support.x.device

    def run() -> None:
        apply_backend_flags(settings, device)
        optimizer.zero_grad(set_to_none=True)
        implementation.backward(batch)
        optimizer.step()

    return run


def graphed_meta_iteration(
    implementation: MetaGradient, batch: EpisodeBatch, settings: PerformanceSettings, warmup: int = 3
) -> Callable[[], None]:
    """The whole meta-iteration captured once as a CUDA graph and replayed (static shapes only).

    Warm-up runs on a side stream first, so cuDNN autotuning and the optimizer state are settled
    before capture. Gradients are None at capture, so backward writes them into the graph's own
    memory, where every replay overwrites them.
    """
    optimizer = torch.optim.Adam(implementation.module.parameters(), lr=1e-3, capturable=True)
    device = batch.support.x.device
    apply_backend_flags(settings, device)

    def body() -> None:
        implementation.backward(batch)
        optimizer.step()

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            optimizer.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        body()
    return graph.replay
