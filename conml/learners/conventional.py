"""The conventional ("vanilla") baseline: one network trained by ordinary supervised learning on
the flattened images of the very episodes a meta-learner sees, and tested without adaptation.

Each meta-batch becomes one supervised batch of all its support and query images (the same data
as the meta-learner, in the paper's words). At meta-test the network scores the query images, or
all images of the test episodes with `score_support` (the paper's vanilla test set); nothing
adapts, so both estimate the same accuracy. BatchNorm keeps running statistics and uses them at
test time, as an ordinarily trained network does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from conml.episodes import EpisodeBatch, Tasks
from conml.learners.base import Adaptation, Episode, Learner
from conml.task_kind import TaskKind


class Conventional(Learner):
    """Every task's model is the one shared network; `adapt` does nothing."""

    predicts_with_net_head = True

    def __init__(self, net: nn.Module, kind: TaskKind, score_support: bool):
        super().__init__(kind)
        self.net = net
        self.score_support = score_support

    def adapt(self, tasks: Tasks, mode: Adaptation) -> None:
        return None

    def predict(self, models: None, x: Tensor) -> Tensor:
        return self.net(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def represent(self, models: None, batch: EpisodeBatch) -> Tensor:
        """The shared network's weights, the same vector for every task."""
        weights = torch.cat([p.flatten() for p in self.net.parameters()])
        return weights.expand(batch.num_tasks, -1)

    def episodic_loss(self, batch: EpisodeBatch, mode: Adaptation) -> Episode:
        whole = batch.whole
        return Episode(self.kind.loss(self.predict(None, whole.x), whole.y, whole.mask).mean())

    def evaluate(self, batch: EpisodeBatch) -> Tensor:
        scored = batch.whole if self.score_support else batch.query
        with torch.no_grad():
            return self.kind.metric(self.predict(None, scored.x), scored.y, scored.mask)
