"""MAML (second order) and first-order MAML, batched over the tasks of a meta-batch.

A task model is the dict of adapted weights {name: [T, *shape]}; psi flattens and concatenates
them. The inner loop takes gradients of the summed task losses with respect to per-task weight
views, which gives every task its own gradient in one backward pass. Any `nn.Module` works as the
net (`conml.nets.task_functional.task_call` chooses how the tasks run).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.learners.base import Adaptation, Learner
from conml.learners.weight_representation import WEIGHT_REPRESENTATIONS, check_weight_representation, represent_weights
from conml.nets.task_batched import task_params
from conml.nets.task_functional import task_call
from conml.task_kind import TaskKind

AdaptedWeights = dict[str, Tensor]


class MAML(Learner):
    """Model-agnostic meta-learning; `first_order=True` gives FOMAML.

    `inner_lr` is one step size per inner step; `learn_inner_lr` meta-learns them (per-step
    learning rates). `eval_inner_steps` (default: `inner_steps`) is used at meta-test time; steps
    beyond the learned ones reuse the last step size. `representation` is psi (see
    `conml.learners.weight_representation`).
    """

    representations = WEIGHT_REPRESENTATIONS
    predicts_with_net_head = True

    def __init__(
        self,
        net: nn.Module,
        kind: TaskKind,
        inner_steps: int,
        inner_lr: float,
        first_order: bool,
        learn_inner_lr: bool,
        eval_inner_steps: int | None,
        representation: str,
    ):
        super().__init__(kind)
        if inner_steps < 1:
            raise ConfigError(f"learner.inner_steps must be at least 1, got {inner_steps}.")
        self.representation = check_weight_representation(representation)
        self.net = net
        self.inner_steps = inner_steps
        self.eval_inner_steps = inner_steps if eval_inner_steps is None else eval_inner_steps
        self.first_order = first_order
        step_sizes = torch.full((inner_steps,), float(inner_lr))
        if learn_inner_lr:
            self.inner_lr = nn.Parameter(step_sizes)
        else:
            self.register_buffer("inner_lr", step_sizes)

    def adapt(self, tasks: Tasks, mode: Adaptation) -> AdaptedWeights:
        meta_training = mode == Adaptation.meta_train
        steps = self.inner_steps if self.training else self.eval_inner_steps
        # Second order only for meta-training (unless first-order); at meta-test each step is detached.
        create_graph = meta_training and not self.first_order
        params = task_params(self.net, tasks.num_tasks)
        with torch.enable_grad():
            if not meta_training:
                params = {name: p.detach().requires_grad_() for name, p in params.items()}
            for step in range(steps):
                prediction = task_call(self.net, params, tasks.x)
                loss = self.kind.loss(prediction, tasks.y, tasks.mask).sum()
                grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
                lr = self.inner_lr[min(step, self.inner_steps - 1)]
                params = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
                if not meta_training:
                    params = {name: p.detach().requires_grad_() for name, p in params.items()}
        return params

    def predict(self, models: AdaptedWeights, x: Tensor) -> Tensor:
        return task_call(self.net, models, x)

    def represent(self, models: AdaptedWeights, batch: EpisodeBatch) -> Tensor:
        return represent_weights(models, self.net, self.representation)
