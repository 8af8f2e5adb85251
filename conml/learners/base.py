"""The learner seam: a learner turns task data into task models, and task models into vectors.

ConML needs nothing else from a learner, which is what makes it learner-agnostic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from conml.episodes import EpisodeBatch, Tasks
from conml.task_kind import TaskKind

TaskModels = Any  # whatever a learner's adapt() returns: adapted weights, prototypes, FiLM parameters, a prompt


class Learner(nn.Module, ABC):
    """A meta-learner g(D; theta): adapt to each task of a batch, predict with the task models."""

    def __init__(self, kind: TaskKind):
        super().__init__()
        self.kind = kind

    @abstractmethod
    def adapt(self, tasks: Tasks) -> TaskModels:
        """One task model per task, differentiable in the meta-parameters while grad is enabled."""

    @abstractmethod
    def predict(self, models: TaskModels, x: Tensor) -> Tensor:
        """Predictions [B, n, ...] of each task's model on its inputs x [B, n, ...]."""

    @abstractmethod
    def represent(self, models: TaskModels, batch: EpisodeBatch) -> Tensor:
        """psi: one vector per task model, [B, d], comparable across the tasks of a batch."""

    def episodic_loss(self, batch: EpisodeBatch, models: AdaptedModels) -> Tensor:
        """The learner's own meta-training loss L_e; by default the query loss of the support-set models."""
        prediction = self.predict(models.support, batch.query.x)
        return self.kind.loss(prediction, batch.query.y, batch.query.mask).mean()

    def episodic_loss_with_prefixes(self, batch: EpisodeBatch, models: AdaptedModels, lengths: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
        """L_e, and psi [B, d] of the models learned from the first l examples of every whole task
        (support ∪ query, `batch.whole`) for each l in `lengths`.

        The contract: entry i equals `represent(adapt(batch.whole.first(lengths[i])), batch)`; a length of
        all the examples reuses `models.whole`. ConML asks this way for e* (the whole task) and, only when
        its subsets kappa are prefixes (conml.subset=prefix), for e^kappa. This default adapts to each
        prefix; a learner that reads prefixes more cheaply in the pass that gives L_e overrides it
        (in-context learning: one causal pass, with one probe token per prefix).
        """
        episodic = self.episodic_loss(batch, models)
        whole = batch.whole
        model = lambda length: models.whole if length == whole.num_examples else self.adapt(whole.first(length))  # noqa: E731
        return episodic, [self.represent(model(length), batch) for length in lengths]

    def evaluate(self, batch: EpisodeBatch) -> Tensor:
        """Per-task metric on the query set after adapting to the support set (meta-testing)."""
        models = self.adapt(batch.support)
        with torch.no_grad():
            prediction = self.predict(models, batch.query.x)
            return self.kind.metric(prediction, batch.query.y, batch.query.mask)


class AdaptedModels:
    """Task models of one meta-batch, built on first use so the episodic loss and ConML share them."""

    def __init__(self, learner: Learner, batch: EpisodeBatch):
        self.learner = learner
        self.batch = batch

    @cached_property
    def support(self) -> TaskModels:
        """Models learned from each task's support set: g(D^tr; theta)."""
        return self.learner.adapt(self.batch.support)

    @cached_property
    def whole(self) -> TaskModels:
        """Models learned from each whole task: g(D^tr ∪ D^val; theta)."""
        return self.learner.adapt(self.batch.whole)
