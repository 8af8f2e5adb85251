"""The learner seam: a learner turns task data into task models, and task models into vectors.

ConML needs nothing else from a learner, which is what makes it learner-agnostic. The whole
contract is `Learner`'s docstring.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from conml.episodes import EpisodeBatch, Tasks
from conml.task_kind import TaskKind

TaskModels = Any  # whatever a learner's adapt() returns: adapted weights, prototypes, FiLM parameters, a prompt


class Adaptation(str, Enum):
    """What an adaptation is for, which decides the graph it keeps."""

    meta_train = "meta_train"  # an outer gradient flows into theta: second order unless the learner is first-order
    meta_test = "meta_test"  # no outer gradient (meta-testing, or a pass without a graph): inner steps are detached


@dataclass
class Episode:
    """A learner's episodic loss of one meta-batch, with the task models it built for that loss.

    `support` (g(D^tr)) and `whole` (g(D^tr ∪ D^val)) are None when the loss did not build them;
    `prefixes` are psi of the models of prefixes of each whole task, when asked for
    (`Learner.episodic_loss_with_prefixes`).
    """

    loss: Tensor
    support: Optional[TaskModels] = None
    whole: Optional[TaskModels] = None
    prefixes: list[Tensor] = field(default_factory=list)


class Learner(nn.Module, ABC):
    """A meta-learner g(D; theta): adapt to each task of a batch, predict with the task models.

    The contract, in full:

    - `adapt(tasks, mode)` builds and returns one task model per task of `tasks`. `mode` says what
      the models are for: `Adaptation.meta_train` keeps the graph to theta (second order, unless the
      learner is first-order by its own setting), `Adaptation.meta_test` keeps none. Nothing else
      (not `torch.is_grad_enabled()`) decides the order. The number of inner steps may follow the
      module's `training` flag (`eval_inner_steps`).
    - `predict(models, x)` and `represent(models, batch)` (psi, [B, d]) are pure functions of the
      models they are given.
    - `episodic_loss(batch, mode)` is meta-training's loss: it returns an `Episode` with L_e and the
      task models it built on the way (support-set and/or whole-task models, adapted with `mode`:
      `meta_train`, or `meta_test` for a pass whose graph is not wanted), so that a caller can reuse them ("Efficient ConML": e^kappa of the support set from the models L_e built;
      metric learners cut both from one pass over support ∪ query).
    - `episodic_loss_with_prefixes(batch, lengths, mode)` is `episodic_loss` plus psi of the models learned
      from the first l examples of each whole task (`batch.whole`) for each l in `lengths`, in
      `Episode.prefixes`: entry i equals `represent(adapt(batch.whole.first(lengths[i]), mode), batch)`.
    - `evaluate(batch)` is the per-task metric on the query set after adapting to the support set with
      `Adaptation.meta_test`. Meta-testing calls it through `meta_test(batch)`, the one switch: eval mode
      (test-time inner steps, no dropout, BatchNorm's running statistics where a net keeps them), no
      graph, and the learner's mode restored afterwards.

    Models are returned, never stored: a learner keeps no per-batch cache and writes into no other
    object, so its methods may be called in any order and any number of times. Whoever wants to
    reuse a model (the ConML objective) keeps the one it was given.
    """

    # True when predictions are the outputs of the learner's `net` itself (MAML, Reptile, conventional
    # training): on classification tasks that net's head must then be as wide as the task has ways.
    # Metric learners and Simple CNAPs embed and compare, so their net has no head to match.
    predicts_with_net_head: bool = False
    # True when task models are built from class labels (metric learners' class means, Simple CNAPs'
    # class-conditional Mahalanobis distance): such a learner runs on classification tasks only.
    builds_models_from_labels: bool = False
    # The values `learner.representation` may take (psi's choices), named when ConML's term looks
    # inert; empty for a learner whose psi is fixed.
    representations: tuple[str, ...] = ()
    # True when the learner runs its own bf16 autocast on CUDA (the in-context learner's setting),
    # which the run then reports as its precision.
    mixed_precision: bool = False

    def __init__(self, kind: TaskKind):
        super().__init__()
        self.kind = kind

    @abstractmethod
    def adapt(self, tasks: Tasks, mode: Adaptation) -> TaskModels:
        """One task model per task (see the class docstring for `mode`)."""

    @abstractmethod
    def predict(self, models: TaskModels, x: Tensor) -> Tensor:
        """Predictions [B, n, ...] of each task's model on its inputs x [B, n, ...]."""

    @abstractmethod
    def represent(self, models: TaskModels, batch: EpisodeBatch) -> Tensor:
        """psi: one vector per task model, [B, d], comparable across the tasks of a batch."""

    def episodic_loss(self, batch: EpisodeBatch, mode: Adaptation) -> Episode:
        """The learner's own meta-training loss L_e; by default the query loss of the support-set models."""
        support = self.adapt(batch.support, mode)
        prediction = self.predict(support, batch.query.x)
        return Episode(self.kind.loss(prediction, batch.query.y, batch.query.mask).mean(), support=support)

    def episodic_loss_with_prefixes(self, batch: EpisodeBatch, lengths: Sequence[int], mode: Adaptation) -> Episode:
        """`episodic_loss`, with psi [B, d] of the models learned from the first l examples of every whole
        task (support ∪ query, `batch.whole`) for each l in `lengths`.

        ConML asks this way for e* (the whole task) and, only when its subsets kappa are prefixes
        (conml.subset=prefix), for e^kappa. This default adapts to each prefix (a length of all the
        examples reuses the whole-task models the loss built, or builds them once); a learner that reads
        prefixes more cheaply in the pass that gives L_e overrides it (in-context learning: one causal
        pass, with one probe token per prefix).
        """
        episode = self.episodic_loss(batch, mode)
        whole, prefixes = batch.whole, []
        for length in lengths:
            if length != whole.num_examples:
                prefixes.append(self.represent(self.adapt(whole.first(length), mode), batch))
                continue
            if episode.whole is None:
                episode = replace(episode, whole=self.adapt(whole, mode))
            prefixes.append(self.represent(episode.whole, batch))
        return replace(episode, prefixes=prefixes)

    def meta_test(self, batch: EpisodeBatch) -> Tensor:
        """Meta-testing of one batch: `evaluate` in eval mode without a graph, the learner's mode restored."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.evaluate(batch)
        finally:
            self.train(was_training)

    def evaluate(self, batch: EpisodeBatch) -> Tensor:
        """Per-task metric on the query set after adapting to the support set (called by `meta_test`)."""
        models = self.adapt(batch.support, Adaptation.meta_test)
        with torch.no_grad():
            prediction = self.predict(models, batch.query.x)
            return self.kind.metric(prediction, batch.query.y, batch.query.mask)
