"""Matching networks (Vinyals et al. 2016): a query's class distribution is the attention-weighted
vote of the support labels, attention being a softmax over cosine similarities to the support
embeddings. psi = the class means of the embeddings in label order, as for ProtoNet (ConML
paper, Table 1). The full-context embeddings (bidirectional LSTM over the support, attention LSTM
over the query) of the original are left out, as in most re-implementations."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conml.learners.metric import LabelledEmbeddings, MetricLearner
from conml.task_kind import TaskKind


class MatchingNet(MetricLearner):
    """`scale` multiplies the cosine similarities before the softmax (1: Vinyals et al.)."""

    def __init__(self, net: nn.Module, kind: TaskKind, scale: float, representation: str):
        super().__init__(net, kind, representation)
        self.scale = scale

    def classify(self, support: LabelledEmbeddings, queries: Tensor) -> Tensor:
        similarity = F.normalize(queries, dim=-1) @ F.normalize(support.embeddings, dim=-1).transpose(1, 2)
        if support.mask is not None:
            similarity = similarity.masked_fill(~support.mask.unsqueeze(1), float("-inf"))
        probabilities = torch.softmax(self.scale * similarity, dim=-1) @ support.one_hot()
        # Log-probabilities serve as logits: cross-entropy on them is the negative log-likelihood.
        return torch.log(probabilities.clamp_min(1e-12))
