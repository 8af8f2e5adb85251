"""Kim et al. Conv2/4/6 as specified, and a few MAML and conventional steps of each on CPU."""

from __future__ import annotations

import functools

import pytest
import torch
from omegaconf import OmegaConf

from conml.learners.base import Adaptation
from conml.learners.conventional import Conventional
from conml.learners.maml import MAML
from conml.nets.kim_conv import KimConvNet
from conml.task_kind import CLASSIFICATION
from tests.conftest import compose_config
from tests.dataset_settings import source
from tests.learner_settings import configured
from tests.net_settings import configured_net

# (config, flattened feature size, parameter count) from Gupta et al.'s models.
ARCHITECTURES = [
    ("kim_conv2", 33 * 33 * 12, 15_484_320),
    ("kim_conv4", 9 * 9 * 96, 10_090_206),
    ("kim_conv6", 3 * 3 * 576, 8_299_908),
]


@functools.cache
def settings(model: str) -> dict:
    """The model config's constructor arguments."""
    cfg = OmegaConf.to_container(compose_config([f"model={model}"]).model)
    return {k: v for k, v in cfg.items() if k != "_target_"}


def build(model: str, **changes) -> KimConvNet:
    return configured_net(model, **changes)


@pytest.mark.parametrize("model, features, parameters", ARCHITECTURES)
def test_architecture_matches_the_paper(model, features, parameters):
    net = build(model)
    assert net.embedding_size == features
    assert sum(p.numel() for p in net.parameters()) == parameters
    assert net.eval()(torch.zeros(2, 3, 128, 128)).shape == (2, 2)
    biases = [m.bias for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert all((b == 0).all() for b in biases)
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in net.modules()) == 3


@pytest.fixture(scope="module")
def batch():
    """Two tasks of support size 2: grouped convolutions over tasks are slow on a CPU."""
    return source("same_different", tasks=["lines", "arrows"], episodes=[4, 2, 2]).sample("train", 0, 2, shots=2)


def small(model: str) -> KimConvNet:
    torch.manual_seed(0)
    return build(model, channels=[2] * len(settings(model)["channels"]), fc_units=8)


@pytest.mark.parametrize(
    "model, learner", [(a[0], "conventional") for a in ARCHITECTURES] + [("kim_conv2", "maml"), ("kim_conv6", "fomaml")]
)
def test_a_few_training_steps_run_and_change_the_weights(model, learner, batch):
    """With the presets' runs (every depth, first-order MAML and conventional), every depth and both orders train."""
    net = small(model)
    if learner == "conventional":
        method = configured("conventional", net, CLASSIFICATION)
    else:
        method = configured("maml", net, CLASSIFICATION, inner_steps=2, inner_lr=1e-3, first_order=learner == "fomaml")
    before = [p.detach().clone() for p in method.parameters()]
    optimizer = torch.optim.Adam(method.parameters(), 1e-3)
    for _ in range(2):
        loss = method.episodic_loss(batch, Adaptation.meta_train).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, method.parameters()))
    method.eval()
    accuracy = method.evaluate(batch)
    assert accuracy.shape == (2,) and ((accuracy >= 0) & (accuracy <= 1)).all()


def test_conventional_trains_on_every_support_and_query_image_and_tests_without_adapting(batch):
    method = configured("conventional", small("kim_conv2"), CLASSIFICATION)
    seen = []
    method.net.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[0]))
    method.episodic_loss(batch, Adaptation.meta_train)
    assert seen == [2 * (2 + 2)], "one supervised batch of all images of the meta-batch"
    method.eval()
    assert torch.equal(method.evaluate(batch), method.evaluate(batch))
    method.score_support = True
    seen.clear()
    method.evaluate(batch)
    assert seen == [2 * (2 + 2)]
