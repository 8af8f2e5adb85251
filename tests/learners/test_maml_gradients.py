"""Batched MAML (tasks folded into the batch) against a per-task autograd reference, in float64.

The reference adapts one task at a time with `torch.func.functional_call` and plain autograd, and
computes ConML's distances with explicit loops, so it shares no batching code with the library.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.func import functional_call

from conml.episodes import EpisodeBatch, Tasks
from conml.learners.maml import MAML
from conml.objective import ConMLObjective, ConMLSettings
from conml.task_kind import CLASSIFICATION, REGRESSION
from tests.learner_settings import configured
from tests.net_settings import configured_net

TASKS = 3


def regression_case():
    torch.manual_seed(0)
    net = configured_net("mlp", in_features=1, hidden=(8, 8), out_features=1).double()
    x = torch.randn(TASKS, 10, 1, dtype=torch.float64)
    y = torch.sin(x) * torch.arange(1, TASKS + 1, dtype=torch.float64).view(-1, 1, 1)
    return net, REGRESSION, EpisodeBatch(Tasks(x[:, :5], y[:, :5]), Tasks(x[:, 5:], y[:, 5:]))


def batchnorm_case():
    torch.manual_seed(0)
    net = configured_net("conv4", in_channels=3, hidden=4, blocks=2, out_features=3, image_size=8).double()
    x = torch.randn(TASKS, 12, 3, 8, 8, dtype=torch.float64)
    y = torch.arange(3).repeat(4).repeat(TASKS, 1)
    return net, CLASSIFICATION, EpisodeBatch(Tasks(x[:, :6], y[:, :6]), Tasks(x[:, 6:], y[:, 6:]))


def reference_adapt(learner: MAML, theta: dict, x, y, first_order: bool) -> dict:
    params = dict(theta)
    for step in range(learner.inner_steps):
        prediction = functional_call(learner.net, params, (x,)).unsqueeze(0)
        loss = learner.kind.loss(prediction, y.unsqueeze(0)).sum()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        params = {name: p - learner.inner_lr[step] * g for (name, p), g in zip(params.items(), grads)}
    return params


def cosine_distance(a, b):
    return 1 - (a * b).sum() / (a.norm() * b.norm())


def reference_loss(learner: MAML, batch: EpisodeBatch, settings: ConMLSettings | None):
    theta = dict(learner.net.named_parameters())
    episodic, support_vectors, whole_vectors = [], [], []
    for t in range(batch.num_tasks):
        s, q = batch.support, batch.query
        adapted = reference_adapt(learner, theta, s.x[t], s.y[t], learner.first_order)
        prediction = functional_call(learner.net, adapted, (q.x[t],)).unsqueeze(0)
        episodic.append(learner.kind.loss(prediction, q.y[t].unsqueeze(0)).squeeze(0))
        if settings is not None:
            whole = reference_adapt(
                learner, theta, torch.cat([s.x[t], q.x[t]]), torch.cat([s.y[t], q.y[t]]), learner.first_order
            )
            support_vectors.append(torch.cat([w.flatten() for w in adapted.values()]))
            whole_vectors.append(torch.cat([w.flatten() for w in whole.values()]))
    loss = torch.stack(episodic).mean()
    if settings is None:
        return loss
    d_in = torch.stack([cosine_distance(a, b) for a, b in zip(support_vectors, whole_vectors)]).mean()
    pairs = [
        cosine_distance(whole_vectors[i], whole_vectors[j])
        for i, j in itertools.permutations(range(batch.num_tasks), 2)
    ]
    d_out = torch.stack(pairs).mean()
    return loss + settings.lam * (d_in - d_out)


@pytest.mark.parametrize("case", [regression_case, batchnorm_case], ids=["mlp", "conv-batchnorm"])
@pytest.mark.parametrize("first_order", [False, True], ids=["second-order", "first-order"])
@pytest.mark.parametrize("conml", [False, True], ids=["plain", "conml"])
def test_batched_meta_gradient_matches_per_task_reference(case, first_order, conml):
    net, kind, batch = case()
    learner = configured(
        "maml", net, kind, inner_steps=2, inner_lr=0.1, first_order=first_order, learn_inner_lr=True
    ).double()
    assert_matches_reference(learner, batch, conml)


def assert_matches_reference(learner: MAML, batch: EpisodeBatch, conml: bool) -> None:
    """The batched meta-gradient (± ConML, lambda 0.5) equals the per-task reference to 1e-10."""
    settings = ConMLSettings(enabled=conml, lam=0.5)
    params = list(learner.parameters())
    batched = torch.autograd.grad(ConMLObjective(settings)(learner, batch).total, params)
    reference = torch.autograd.grad(reference_loss(learner, batch, settings if conml else None), params)
    worst = max((b - r).abs().max().item() for b, r in zip(batched, reference))
    assert worst < 1e-10, f"batched meta-gradient differs from the per-task reference by {worst:.3e}"
    assert any(r.abs().max() > 1e-6 for r in reference), "degenerate case: the reference gradient is zero"


def test_second_order_differs_from_first_order():
    """Guards the test above against a reference that silently drops second-order terms."""
    net, kind, batch = batchnorm_case()
    grads = []
    for first_order in (False, True):
        learner = configured("maml", net, kind, inner_steps=2, inner_lr=0.1, first_order=first_order).double()
        grads.append(
            torch.autograd.grad(
                ConMLObjective(ConMLSettings(enabled=False))(learner, batch).total, list(learner.parameters())
            )
        )
    assert max((a - b).abs().max().item() for a, b in zip(*grads)) > 1e-6
