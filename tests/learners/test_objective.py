"""ConML's d_in / d_out against hand computation, the ablation settings, and ConML off."""

from __future__ import annotations

import math

import pytest
import torch

from conml.distances import Distance
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.learners.base import Adaptation, Learner
from conml.learners.maml import MAML
from conml.objective import ConMLObjective, ConMLSettings, SubsetStrategy, Terms
from conml.task_kind import REGRESSION
from tests.learner_settings import configured
from tests.net_settings import configured_net


class MeanLearner(Learner):
    """A task model is the mean of its inputs; psi is that mean. Small enough to compute by hand."""

    def __init__(self):
        super().__init__(REGRESSION)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def adapt(self, tasks, mode):
        return self.scale * tasks.x.mean(1)

    def predict(self, models, x):
        return models[:, None, :1].expand(*x.shape[:2], 1)

    def represent(self, models, batch):
        return models


def tiny_batch() -> EpisodeBatch:
    support = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [2.0, 2.0]], [[0.0, -1.0], [1.0, 1.0]]])
    query = torch.tensor([[[3.0, 1.0]], [[0.0, 1.0]], [[-2.0, 0.0]]])
    y = lambda x: x[..., :1] * 0.5  # noqa: E731
    return EpisodeBatch(Tasks(support, y(support)), Tasks(query, y(query)))


def cosine(a, b):
    return 1 - sum(p * q for p, q in zip(a, b)) / (math.hypot(*a) * math.hypot(*b))


def sigmoid_squared(a, b):
    return 1 / (1 + math.exp(-sum((p - q) ** 2 for p, q in zip(a, b))))


def hand_distances(batch, phi):
    support = [[sum(col) / len(col) for col in zip(*task)] for task in batch.support.x.tolist()]
    whole = [
        [sum(col) / len(col) for col in zip(*(s + q))] for s, q in zip(batch.support.x.tolist(), batch.query.x.tolist())
    ]
    d_in = sum(phi(a, b) for a, b in zip(support, whole)) / len(whole)
    pairs = [(i, j) for i in range(len(whole)) for j in range(len(whole)) if i != j]
    d_out = sum(phi(whole[i], whole[j]) for i, j in pairs) / len(pairs)
    return d_in, d_out


@pytest.mark.parametrize("distance, phi", [(Distance.cosine, cosine), (Distance.sigmoid_squared, sigmoid_squared)])
def test_distances_match_hand_computation(distance, phi):
    batch, learner = tiny_batch(), MeanLearner()
    parts = ConMLObjective(ConMLSettings(lam=0.3, phi=distance))(learner, batch)
    d_in, d_out = hand_distances(batch, phi)
    assert parts.d_in.item() == pytest.approx(d_in, abs=1e-6)
    assert parts.d_out.item() == pytest.approx(d_out, abs=1e-6)
    assert parts.total.item() == pytest.approx(parts.episodic.item() + 0.3 * (d_in - d_out), abs=1e-6)


@pytest.mark.parametrize("terms, sign_in, sign_out", [(Terms.alignment, 1, 0), (Terms.discrimination, 0, -1)])
def test_ablations_keep_one_term(terms, sign_in, sign_out):
    batch, learner = tiny_batch(), MeanLearner()
    parts = ConMLObjective(ConMLSettings(lam=0.3, terms=terms))(learner, batch)
    d_in, d_out = hand_distances(batch, cosine)
    assert (parts.d_in is None) == (sign_in == 0) and (parts.d_out is None) == (sign_out == 0)
    assert parts.total.item() == pytest.approx(
        parts.episodic.item() + 0.3 * (sign_in * d_in + sign_out * d_out), abs=1e-6
    )


def test_random_and_prefix_subsets_have_the_requested_size():
    batch = tiny_batch()
    random = ConMLObjective(ConMLSettings(subset=SubsetStrategy.random, num_subsets=3, subset_fraction=0.67))
    subsets = random.subsets(batch)
    assert len(subsets) == 3 and all(s.x.shape == (3, 2, 2) for s in subsets)
    whole = batch.whole.x
    for s in subsets:  # every drawn example comes from its own task
        for t in range(3):
            assert all(any(torch.equal(row, w) for w in whole[t]) for row in s.x[t])
    prefix = ConMLObjective(ConMLSettings(subset=SubsetStrategy.prefix, subset_fraction=0.5)).subsets(batch)[0]
    assert torch.equal(prefix.x, whole[:, :1])


def test_support_subset_with_several_draws_is_refused():
    with pytest.raises(ConfigError, match="num_subsets"):
        ConMLObjective(ConMLSettings(subset=SubsetStrategy.support, num_subsets=2))


def test_conml_off_is_the_plain_learner_bit_for_bit():
    torch.manual_seed(0)
    learner = configured(
        "maml", configured_net("mlp", in_features=1, hidden=(16, 16), out_features=1), REGRESSION, inner_steps=2
    )
    x, y = torch.randn(4, 10, 1), torch.randn(4, 10, 1)
    batch = EpisodeBatch(Tasks(x[:, :5], y[:, :5]), Tasks(x[:, 5:], y[:, 5:]))
    params = list(learner.parameters())

    parts = ConMLObjective(ConMLSettings(enabled=False))(learner, batch)
    plain = learner.kind.loss(
        learner.predict(learner.adapt(batch.support, Adaptation.meta_train), batch.query.x), batch.query.y
    ).mean()

    assert parts.d_in is None and parts.d_out is None
    assert torch.equal(parts.total, plain)
    for a, b in zip(torch.autograd.grad(parts.total, params), torch.autograd.grad(plain, params)):
        assert torch.equal(a, b)


def test_single_task_batch_has_zero_discrimination():
    batch = tiny_batch()
    one = EpisodeBatch(Tasks(batch.support.x[:1], batch.support.y[:1]), Tasks(batch.query.x[:1], batch.query.y[:1]))
    assert ConMLObjective(ConMLSettings())(MeanLearner(), one).d_out.item() == 0.0
