"""Prototypical networks (Snell et al. 2017): classify a query by its squared Euclidean distance to
each class mean of the embedded support set. psi = those class means, concatenated in label order."""

from __future__ import annotations

from torch import Tensor

from conml.learners.metric import LabelledEmbeddings, MetricLearner


class ProtoNet(MetricLearner):
    def classify(self, support: LabelledEmbeddings, queries: Tensor) -> Tensor:
        prototypes = support.class_means()
        # -||q - c||^2 expanded, so no [T, q, ways, d] difference tensor is built.
        squared = (
            queries.pow(2).sum(-1, keepdim=True)
            - 2.0 * queries @ prototypes.transpose(1, 2)
            + prototypes.pow(2).sum(-1).unsqueeze(1)
        )
        return -squared
