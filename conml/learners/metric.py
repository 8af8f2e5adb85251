"""What ProtoNet and MatchingNet share: an embedding network, labelled support embeddings as the
task model, and psi = the class means concatenated in label order.

The embedding network runs each task as if alone (`task_call`; on the fast path tasks are folded
into channel groups), so BatchNorm statistics are per task and a task's embeddings never depend
on the other tasks of the batch or on the evaluation batch size. For meta-training and
meta-testing each task's support and query are embedded in one pass, as learn2learn's ProtoNet
does; the support-set and whole-task models are both cut from that pass, so ConML costs these
learners no extra forward pass.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.learners.base import Adaptation, Episode, Learner
from conml.nets.task_batched import task_params
from conml.nets.task_functional import task_call
from conml.task_kind import TaskKind


@dataclass(frozen=True)
class LabelledEmbeddings:
    """A metric learner's task models: embeddings [T, n, d] of each task's examples with labels [T, n]."""

    embeddings: Tensor
    labels: Tensor
    mask: Tensor | None
    ways: int

    def one_hot(self, ways: int | None = None) -> Tensor:
        """Labels as [T, n, ways] indicators; padded examples are all zero."""
        indicators = nn.functional.one_hot(self.labels, ways or self.ways).to(self.embeddings.dtype)
        return indicators if self.mask is None else indicators * self.mask.unsqueeze(-1).to(indicators.dtype)

    def class_means(self, ways: int | None = None) -> Tensor:
        """[T, ways, d]; a class without examples has a zero mean."""
        indicators = self.one_hot(ways)
        sums = indicators.transpose(1, 2) @ self.embeddings
        return sums / indicators.sum(1).clamp_min(1.0).unsqueeze(-1)


def class_count(labels: Tensor) -> int:
    """Classes of an episode whose labels are 0..ways-1 (one host sync; ways differ between train and test)."""
    return int(labels.max()) + 1


class MetricLearner(Learner):
    """Adapts by embedding the support set; subclasses say how queries are classified against it.

    `representation` is psi: `prototypes` (the paper: the class means in label order), or `centred`
    (each class mean minus the task's mean class mean). Embeddings after a ReLU are non-negative and
    share a large common component, so raw prototypes of unrelated tasks point almost the same way;
    centring keeps only how a task's classes differ from one another.
    """

    representations = ("prototypes", "centred")
    builds_models_from_labels = True

    def __init__(self, net: nn.Module, kind: TaskKind, representation: str):
        super().__init__(kind)
        if representation not in self.representations:
            raise ConfigError(
                f"learner.representation must be one of {list(self.representations)}, got '{representation}'."
            )
        self.net, self.representation = net, representation

    @abstractmethod
    def classify(self, support: LabelledEmbeddings, queries: Tensor) -> Tensor:
        """Logits [T, q, ways] of query embeddings [T, q, d]."""

    def embed(self, x: Tensor) -> Tensor:
        """[T, n, *image] -> [T, n, d], with BatchNorm statistics per task."""
        return task_call(self.net, task_params(self.net, x.shape[0]), x)

    def adapt(self, tasks: Tasks, mode: Adaptation) -> LabelledEmbeddings:
        return LabelledEmbeddings(self.embed(tasks.x), tasks.y, tasks.mask, class_count(tasks.y))

    def predict(self, models: LabelledEmbeddings, x: Tensor) -> Tensor:
        return self.classify(models, self.embed(x))

    def represent(self, models: LabelledEmbeddings, batch: EpisodeBatch) -> Tensor:
        # A subset may lack some classes; its psi still has a (zero) slot for each, in label order.
        ways = class_count(batch.whole.y)
        means = models.class_means(ways)
        if self.representation == "centred":
            present = (models.one_hot(ways).sum(1) > 0).to(means.dtype).unsqueeze(-1)
            centre = (means * present).sum(1, keepdim=True) / present.sum(1, keepdim=True).clamp_min(1.0)
            means = (means - centre) * present
        return means.flatten(1)

    def _embed_episode(self, batch: EpisodeBatch) -> tuple[LabelledEmbeddings, LabelledEmbeddings, Tensor]:
        """Support models, whole-task models and query embeddings from one pass over support ∪ query."""
        whole = batch.whole
        embeddings = self.embed(whole.x)
        ways, cut = class_count(whole.y), batch.support.num_examples
        support = LabelledEmbeddings(embeddings[:, :cut], batch.support.y, batch.support.mask, ways)
        return support, LabelledEmbeddings(embeddings, whole.y, whole.mask, ways), embeddings[:, cut:]

    def episodic_loss(self, batch: EpisodeBatch, mode: Adaptation) -> Episode:
        support, whole, queries = self._embed_episode(batch)
        loss = self.kind.loss(self.classify(support, queries), batch.query.y, batch.query.mask).mean()
        return Episode(loss, support=support, whole=whole)

    def evaluate(self, batch: EpisodeBatch) -> Tensor:
        with torch.no_grad():
            support, _, queries = self._embed_episode(batch)
            return self.kind.metric(self.classify(support, queries), batch.query.y, batch.query.mask)
