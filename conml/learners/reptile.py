"""Reptile (Nichol et al. 2018), batched over the tasks of a meta-batch.

A task model is the dict of weights {name: [T, *shape]} after a few first-order steps on the
task; psi flattens and concatenates them, as for MAML. The episodic loss is a surrogate,
0.5 * mean_tasks ||theta - stopgrad(phi_task)||^2, whose gradient is theta - mean(phi), so one step
of SGD with learning rate eps is Reptile's update theta <- theta + eps * (mean(phi) - theta). phi are
the weights adapted on the whole task (support ∪ query), the models ConML's e* is built from;
with `train_shots + train_queries = 15` per class that is Reptile's 15-shot adaptation set.

The inner loop uses Adam with betas (0, 0.999) as in the original, but with a fresh Adam state
per task (the original carries one Adam state from task to task, which cannot be batched).
`inner_optimizer: sgd` gives plain gradient steps. Mini-batches are consecutive slices of the
task's (already shuffled) examples, wrapping around. The adapted weights are theta plus
detached updates, so gradients reach theta through the identity only, as in first-order MAML.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.learners.base import Adaptation, Episode, Learner
from conml.learners.weight_representation import WEIGHT_REPRESENTATIONS, check_weight_representation, represent_weights
from conml.nets.task_batched import task_params
from conml.nets.task_functional import task_call
from conml.task_kind import TaskKind

AdaptedWeights = dict[str, Tensor]


class Reptile(Learner):
    """`representation` is psi (see `conml.learners.weight_representation`)."""

    inner_optimizers = ("adam", "sgd")
    representations = WEIGHT_REPRESENTATIONS
    predicts_with_net_head = True

    def __init__(
        self,
        net: nn.Module,
        kind: TaskKind,
        inner_steps: int,
        inner_lr: float,
        inner_batch_size: int | None,
        eval_inner_steps: int | None,
        eval_inner_batch_size: int | None,
        inner_optimizer: str,
        adam_betas: tuple[float, float],
        adam_eps: float,
        representation: str,
    ):
        super().__init__(kind)
        if inner_optimizer not in self.inner_optimizers:
            raise ConfigError(
                f"learner.inner_optimizer must be one of {list(self.inner_optimizers)}, got '{inner_optimizer}'."
            )
        if inner_steps < 1:
            raise ConfigError(f"learner.inner_steps must be at least 1, got {inner_steps}.")
        self.net, self.representation = net, check_weight_representation(representation)
        self.inner_steps, self.inner_lr, self.inner_batch_size = inner_steps, inner_lr, inner_batch_size
        self.eval_inner_steps = inner_steps if eval_inner_steps is None else eval_inner_steps
        self.eval_inner_batch_size = inner_batch_size if eval_inner_batch_size is None else eval_inner_batch_size
        self.inner_optimizer, self.adam_betas, self.adam_eps = inner_optimizer, tuple(adam_betas), adam_eps

    def adapt(self, tasks: Tasks, mode: Adaptation) -> AdaptedWeights:
        steps, batch_size = (
            (self.inner_steps, self.inner_batch_size)
            if self.training
            else (self.eval_inner_steps, self.eval_inner_batch_size)
        )
        meta = task_params(self.net, tasks.num_tasks)
        updates = {name: torch.zeros_like(p) for name, p in meta.items()}
        moments: dict[str, Tensor] = {}
        with torch.enable_grad():
            for step in range(steps):
                weights = {name: (p.detach() + updates[name]).requires_grad_() for name, p in meta.items()}
                chunk = _minibatch(tasks, step, batch_size)
                loss = self.kind.loss(task_call(self.net, weights, chunk.x), chunk.y, chunk.mask).sum()
                grads = torch.autograd.grad(loss, list(weights.values()))
                for (name, update), grad in zip(list(updates.items()), grads):
                    updates[name] = update - self.inner_lr * self._direction(name, grad, step, moments)
        return {name: p + updates[name] for name, p in meta.items()}

    def _direction(self, name: str, grad: Tensor, step: int, moments: dict[str, Tensor]) -> Tensor:
        """The inner step direction: the gradient (SGD) or Adam's bias-corrected ratio."""
        if self.inner_optimizer == "sgd":
            return grad
        beta1, beta2 = self.adam_betas
        first = moments[f"{name}.m"] = beta1 * moments.get(f"{name}.m", torch.zeros_like(grad)) + (1 - beta1) * grad
        second = moments[f"{name}.v"] = (
            beta2 * moments.get(f"{name}.v", torch.zeros_like(grad)) + (1 - beta2) * grad.square()
        )
        corrected_first = first / (1 - beta1 ** (step + 1))
        corrected_second = second / (1 - beta2 ** (step + 1))
        return corrected_first / (corrected_second.sqrt() + self.adam_eps)

    def predict(self, models: AdaptedWeights, x: Tensor) -> Tensor:
        return task_call(self.net, models, x)

    def represent(self, models: AdaptedWeights, batch: EpisodeBatch) -> Tensor:
        return represent_weights(models, self.net, self.representation)

    def episodic_loss(self, batch: EpisodeBatch, mode: Adaptation) -> Episode:
        whole = self.adapt(batch.whole, mode)
        meta = dict(self.net.named_parameters())
        squared = sum((meta[name] - w.detach()).pow(2).sum() for name, w in whole.items())
        return Episode(0.5 * squared / batch.num_tasks, whole=whole)


def _minibatch(tasks: Tasks, step: int, size: int | None) -> Tasks:
    """Examples step*size .. step*size+size-1 of every task, wrapping around; all of them if size is None or larger."""
    count = tasks.num_examples
    if size is None or size >= count:
        return tasks
    positions = (step * size + torch.arange(size, device=tasks.x.device)) % count
    return tasks.take(positions.expand(tasks.num_tasks, size))
