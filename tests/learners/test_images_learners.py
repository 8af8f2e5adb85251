"""ProtoNet, MatchingNet, Reptile and ResNet-12 (with MAML) against per-task float64 references.

Each reference handles one task at a time with the plain module forward (BatchNorm in train mode
sees only that task's images) and explicit loops, so it shares no batching code with the library.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from conml.episodes import EpisodeBatch, Tasks
from conml.learners.base import Adaptation
from conml.learners.maml import MAML
from conml.learners.matchingnet import MatchingNet
from conml.learners.protonet import ProtoNet
from conml.learners.reptile import Reptile
from conml.nets.conv import ConvNet
from conml.nets.task_batched import task_forward, task_params
from conml.objective import ConMLObjective, ConMLSettings
from conml.task_kind import CLASSIFICATION
from tests.learner_settings import configured
from tests.learners.test_maml_gradients import assert_matches_reference
from tests.net_settings import configured_net

TASKS, WAYS, SHOTS, QUERIES = 3, 3, 2, 2


def episode(seed: int = 0, size: int = 8) -> EpisodeBatch:
    """Random images, labels shuffled differently in every task."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(TASKS, WAYS * (SHOTS + QUERIES), 3, size, size, generator=generator, dtype=torch.float64)
    support_y = torch.stack(
        [torch.arange(WAYS).repeat(SHOTS)[torch.randperm(WAYS * SHOTS, generator=generator)] for _ in range(TASKS)]
    )
    query_y = torch.stack(
        [torch.arange(WAYS).repeat(QUERIES)[torch.randperm(WAYS * QUERIES, generator=generator)] for _ in range(TASKS)]
    )
    cut = WAYS * SHOTS
    return EpisodeBatch(Tasks(x[:, :cut], support_y), Tasks(x[:, cut:], query_y))


def embedding_net() -> ConvNet:
    torch.manual_seed(0)
    return configured_net("conv4", in_channels=3, hidden=4, blocks=2, out_features=None, image_size=8).double()


def cosine_distance(a, b):
    return 1 - (a * b).sum() / (a.norm() * b.norm())


def contrastive(support_vectors, whole_vectors, lam):
    d_in = torch.stack([cosine_distance(a, b) for a, b in zip(support_vectors, whole_vectors)]).mean()
    d_out = torch.stack(
        [cosine_distance(whole_vectors[i], whole_vectors[j]) for i, j in itertools.permutations(range(TASKS), 2)]
    ).mean()
    return lam * (d_in - d_out)


def metric_reference_loss(learner, batch: EpisodeBatch, lam: float | None):
    """Per task: embed support ∪ query in one forward pass, classify the queries, psi = class means."""
    losses, support_vectors, whole_vectors = [], [], []
    for t in range(TASKS):
        s_x, s_y, q_x, q_y = batch.support.x[t], batch.support.y[t], batch.query.x[t], batch.query.y[t]
        embedded = learner.net(torch.cat([s_x, q_x]))
        support, queries = embedded[: len(s_x)], embedded[len(s_x) :]
        means = torch.stack([support[s_y == c].mean(0) for c in range(WAYS)])
        if isinstance(learner, ProtoNet):
            logits = -torch.stack([((q - means) ** 2).sum(-1) for q in queries])
        else:
            attention = torch.stack(
                [torch.softmax(learner.scale * F.cosine_similarity(q.unsqueeze(0), support), 0) for q in queries]
            )
            logits = torch.log(attention @ F.one_hot(s_y, WAYS).double())
        losses.append(F.cross_entropy(logits, q_y))
        whole_y = torch.cat([s_y, q_y])
        support_vectors.append(means.flatten())
        whole_vectors.append(torch.stack([embedded[whole_y == c].mean(0) for c in range(WAYS)]).flatten())
    loss = torch.stack(losses).mean()
    return loss if lam is None else loss + contrastive(support_vectors, whole_vectors, lam)


@pytest.mark.parametrize("learner_name", ["protonet", "matchingnet"])
@pytest.mark.parametrize("conml", [False, True], ids=["plain", "conml"])
def test_metric_learner_meta_gradient_matches_per_task_reference(learner_name, conml):
    learner = configured(learner_name, embedding_net(), CLASSIFICATION)
    batch = episode()
    params = list(learner.parameters())
    batched = torch.autograd.grad(ConMLObjective(ConMLSettings(enabled=conml, lam=0.5))(learner, batch).total, params)
    reference = torch.autograd.grad(metric_reference_loss(learner, batch, 0.5 if conml else None), params)
    worst = max((b - r).abs().max().item() for b, r in zip(batched, reference))
    assert worst < 1e-10, f"batched meta-gradient differs from the per-task reference by {worst:.3e}"


@pytest.mark.parametrize("learner_name", ["protonet", "matchingnet"])
def test_metric_learner_evaluates_like_the_reference(learner_name):
    learner = configured(learner_name, embedding_net(), CLASSIFICATION)
    batch = episode(seed=1)
    accuracy = learner.evaluate(batch)
    with torch.no_grad():
        embedded = [learner.net(torch.cat([batch.support.x[t], batch.query.x[t]])) for t in range(TASKS)]
        models = learner.adapt(batch.support, Adaptation.meta_test)  # only for its class count
    assert models.ways == WAYS
    for t in range(TASKS):
        support, queries = embedded[t][: WAYS * SHOTS].unsqueeze(0), embedded[t][WAYS * SHOTS :].unsqueeze(0)
        one = type(models)(support, batch.support.y[t : t + 1], None, WAYS)
        expected = (learner.classify(one, queries).argmax(-1) == batch.query.y[t]).double().mean()
        assert accuracy[t] == expected


def test_psi_is_the_class_means_in_label_order():
    learner = configured("protonet", embedding_net(), CLASSIFICATION)
    batch = episode()
    models = learner.adapt(batch.support, Adaptation.meta_train)
    psi = learner.represent(models, batch).view(TASKS, WAYS, -1)
    swap = torch.tensor([1, 0, 2])
    relabelled = EpisodeBatch(Tasks(batch.support.x, swap[batch.support.y]), Tasks(batch.query.x, swap[batch.query.y]))
    psi_swapped = learner.represent(learner.adapt(relabelled.support, Adaptation.meta_train), relabelled).view(
        TASKS, WAYS, -1
    )
    assert torch.allclose(psi_swapped, psi[:, swap])
    # A subset without class 2 keeps a (zero) slot for it, so psi stays comparable with e*.
    kept = (batch.support.y != 2).nonzero()[:, 1].view(TASKS, -1)
    subset = batch.support.take(kept)
    psi_subset = learner.represent(learner.adapt(subset, Adaptation.meta_train), batch).view(TASKS, WAYS, -1)
    assert psi_subset.shape == psi.shape and psi_subset[:, 2].abs().max() == 0


def test_embeddings_do_not_depend_on_the_other_tasks():
    learner = configured("protonet", embedding_net(), CLASSIFICATION)
    batch = episode()
    together = learner.embed(batch.support.x)
    alone = learner.embed(batch.support.x[1:2])
    assert torch.allclose(together[1:2], alone, atol=1e-12)


def reference_reptile_weights(learner: Reptile, x, y) -> dict:
    """One task: the inner loop written out with functional_call and a per-task Adam (or SGD)."""
    weights = {name: p.detach().clone() for name, p in learner.net.named_parameters()}
    first = {name: torch.zeros_like(w) for name, w in weights.items()}
    second = {name: torch.zeros_like(w) for name, w in weights.items()}
    beta1, beta2 = learner.adam_betas
    for step in range(learner.inner_steps):
        size = min(learner.inner_batch_size, len(x))
        rows = [(step * size + i) % len(x) for i in range(size)]
        leaves = {name: w.clone().requires_grad_() for name, w in weights.items()}
        loss = F.cross_entropy(functional_call(learner.net, leaves, (x[rows],)), y[rows])
        grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
        for name, g in grads.items():
            if learner.inner_optimizer == "sgd":
                direction = g
            else:
                first[name] = beta1 * first[name] + (1 - beta1) * g
                second[name] = beta2 * second[name] + (1 - beta2) * g * g
                corrected_first = first[name] / (1 - beta1 ** (step + 1))
                corrected_second = second[name] / (1 - beta2 ** (step + 1))
                direction = corrected_first / (corrected_second.sqrt() + learner.adam_eps)
            weights[name] = weights[name] - learner.inner_lr * direction
    return weights


@pytest.mark.parametrize("inner_optimizer", ["adam", "sgd"])
def test_reptile_gradient_is_theta_minus_mean_adapted_weights(inner_optimizer):
    torch.manual_seed(0)
    net = configured_net("conv4", in_channels=3, hidden=4, blocks=2, out_features=WAYS, image_size=8).double()
    learner = configured(
        "reptile",
        net,
        CLASSIFICATION,
        inner_steps=3,
        inner_lr=0.05,
        inner_batch_size=5,
        inner_optimizer=inner_optimizer,
    )
    batch = episode()
    parts = ConMLObjective(ConMLSettings(enabled=False))(learner, batch)
    grads = dict(zip([n for n, _ in net.named_parameters()], torch.autograd.grad(parts.total, list(net.parameters()))))
    whole = batch.whole
    adapted = [reference_reptile_weights(learner, whole.x[t], whole.y[t]) for t in range(TASKS)]
    for name, p in net.named_parameters():
        expected = p.detach() - torch.stack([a[name] for a in adapted]).mean(0)
        # Conv biases before BatchNorm have ~1e-17 gradients, which Adam's normalisation turns into ~1e-10 noise.
        assert torch.allclose(grads[name], expected, atol=1e-9), name
    assert max(g.abs().max() for g in grads.values()) > 1e-4


def test_reptile_conml_gradient_reaches_theta_through_the_adapted_weights():
    torch.manual_seed(0)
    net = configured_net("conv4", in_channels=3, hidden=4, blocks=2, out_features=WAYS, image_size=8).double()
    learner = configured("reptile", net, CLASSIFICATION, inner_steps=2, inner_lr=0.05, inner_batch_size=4)
    batch = episode()
    plain, conml = (
        torch.autograd.grad(
            ConMLObjective(ConMLSettings(enabled=on, lam=1.0))(learner, batch).total, list(net.parameters())
        )
        for on in (False, True)
    )
    assert max((a - b).abs().max().item() for a, b in zip(plain, conml)) > 1e-8


def test_resnet12_task_forward_matches_the_module_per_task():
    torch.manual_seed(0)
    net = configured_net("resnet12", channels=(4, 6), out_features=3, image_size=8).double()
    x = torch.randn(2, 5, 3, 8, 8, dtype=torch.float64)
    batched = task_forward(net, task_params(net, 2), x)
    for t in range(2):
        assert torch.allclose(batched[t], net(x[t]), atol=1e-12)


@pytest.mark.parametrize("first_order", [False, True], ids=["second-order", "first-order"])
@pytest.mark.parametrize("conml", [False, True], ids=["plain", "conml"])
def test_maml_resnet12_meta_gradient_matches_per_task_reference(first_order, conml):
    torch.manual_seed(0)
    net = configured_net("resnet12", channels=(4, 6), out_features=WAYS, image_size=8).double()
    learner = configured("maml", net, CLASSIFICATION, inner_steps=2, inner_lr=0.1, first_order=first_order).double()
    assert_matches_reference(learner, episode(), conml)
