"""The key correctness checks on the device under test (`gpu` marker): float32 there against float64 on the CPU.

`CONML_CHECK_DEVICE` names the device (default `cpu`). The default suite runs these on the CPU at
tiny sizes, so they cannot rot while no GPU is around; `make gpu-check` runs them on the GPU
(`pytest -m gpu` with CONML_CHECK_DEVICE=cuda), where they check what the CPU cannot: cuDNN's
grouped convolutions and their double backward, CUDA kernels for every learner, episodes and
caches placed on the device, and a resumed run ending where an uninterrupted one does.

Tolerances: IEEE float32 (TF32 is switched off here) against float64, relative to the largest entry
of the reference; the faster settings (TF32, bf16, channels_last, CUDA graphs) have their own gates
in `make gpu-check`.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch

from conml.episodes import EpisodeBatch, Tasks
from conml.learners.icl import InContextLearner
from conml.learners.maml import MAML
from conml.objective import ConMLObjective, ConMLSettings
from conml.performance import PerformanceSettings, Precision, apply_backend_flags
from conml.train import run
from tests.conftest import TINY, compose_config
from tests.dataset_settings import source
from tests.learner_settings import configured
from tests.learners.test_conml_reference import CASES, batch_of, gradients, meta_parameters
from tests.learners.test_maml_gradients import batchnorm_case, reference_loss, regression_case

pytestmark = pytest.mark.gpu

DEVICE = torch.device(os.environ.get("CONML_CHECK_DEVICE", "cpu"))
# float32 against float64, relative to the reference's largest entry.
TOLERANCE = 1e-4
# Simple CNAPs inverts a regularised class covariance per class: float32 loses more there.
LOOSER = {"simple_cnaps": 1e-3}


@pytest.fixture(autouse=True)
def strict_float32():
    """IEEE float32 on the device: TF32 would be checked against its own, looser gate."""
    apply_backend_flags(PerformanceSettings(precision=Precision.float32), DEVICE)


def on_device(batch: EpisodeBatch) -> EpisodeBatch:
    """The batch in float32 on the device under test (labels keep their integer dtype)."""

    def move(tasks: Tasks) -> Tasks:
        cast = lambda t: t.float() if t.is_floating_point() else t  # noqa: E731
        return Tasks(cast(tasks.x), cast(tasks.y), tasks.mask).to(DEVICE)

    probe = None if batch.probe is None else batch.probe.float().to(DEVICE)
    return EpisodeBatch(move(batch.support), move(batch.query), probe, batch.info)


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.detach().double().cpu()
    return ((value.detach().double().cpu() - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("case", [regression_case, batchnorm_case], ids=["mlp", "conv-batchnorm"])
@pytest.mark.parametrize("first_order", [False, True], ids=["maml", "fomaml"])
@pytest.mark.parametrize("conml", [False, True], ids=["plain", "conml"])
def test_batched_maml_meta_gradient_on_the_device(case, first_order, conml):
    """Tasks folded into grouped convolutions (cuDNN on a GPU), second-order through BatchNorm."""
    net, kind, batch = case()
    reference_learner = configured(
        "maml", net, kind, inner_steps=2, inner_lr=0.1, first_order=first_order, learn_inner_lr=True
    ).double()
    settings = ConMLSettings(enabled=conml, lam=0.5)
    reference = torch.autograd.grad(
        reference_loss(reference_learner, batch, settings if conml else None), list(reference_learner.parameters())
    )
    learner = copy.deepcopy(reference_learner).float().to(DEVICE)
    value = torch.autograd.grad(ConMLObjective(settings)(learner, on_device(batch)).total, list(learner.parameters()))
    error = relative_error(torch.cat([v.flatten() for v in value]), torch.cat([r.flatten() for r in reference]))
    assert error < TOLERANCE, (
        f"meta-gradient on {DEVICE.type} (float32) differs from the float64 CPU reference by {error:.2e}"
    )


# Reptile with its inner SGD: inner Adam normalises each gradient by its own size, so float32 rounding
# in gradients that are exactly zero in float64 (biases before BatchNorm) becomes full steps of +-lr.
@pytest.mark.parametrize("name", ["maml", "fomaml", "reptile-sgd", "protonet", "matchingnet", "simple_cnaps", "icl"])
def test_conml_terms_and_meta_gradient_on_the_device(name, tmp_path):
    """L_e, d_in, d_out and the gradient of L_e + lambda (d_in - d_out) against the per-task float64 reference."""
    case = CASES[name]
    torch.manual_seed(0)
    reference_learner = case.learner(tmp_path).double()
    batch = batch_of(case)
    reference = case.reference(reference_learner, batch)
    d_in, d_out = reference.distances(case.settings)
    expected = {"episodic": reference.episodic, "d_in": d_in, "d_out": d_out}
    expected_total = reference.episodic + case.settings.lam * (d_in - d_out)
    expected_gradient = gradients(expected_total, meta_parameters(reference_learner))

    learner = copy.deepcopy(reference_learner).float().to(DEVICE)
    if isinstance(learner, InContextLearner):
        learner.mixed_precision = False  # float32 here; bf16 autocast has its own check below
    parts = ConMLObjective(case.settings)(learner, on_device(batch))
    tolerance = LOOSER.get(name, TOLERANCE)
    for term, value in expected.items():
        got = getattr(parts, term)
        assert got.device.type == DEVICE.type
        error = abs(got.item() - value.item()) / max(abs(value.item()), 1e-12)
        assert error < tolerance, f"{term} on {DEVICE.type}: {got.item()!r} vs {value.item()!r} (float64 CPU)"
    got_gradient = gradients(parts.total, meta_parameters(learner))
    flat = lambda grads: torch.cat([g.flatten().double().cpu() for g in grads.values()])  # noqa: E731
    error = relative_error(flat(got_gradient), flat(expected_gradient))
    assert error < tolerance, f"meta-gradient on {DEVICE.type} differs from the float64 CPU reference by {error:.2e}"


def test_in_context_learning_under_bf16_autocast(tmp_path):
    """The ICL learner's default on a GPU (`learner.mixed_precision=true`: bf16 autocast) against float64,
    at bf16's tolerances (those of B5's loss gate and of the bf16 meta-gradient gate); float32 on a CPU."""
    case = CASES["icl"]
    torch.manual_seed(0)
    reference_learner = case.learner(tmp_path).double()
    batch = batch_of(case)
    reference = case.reference(reference_learner, batch)
    d_in, d_out = reference.distances(case.settings)
    expected_gradient = gradients(
        reference.episodic + case.settings.lam * (d_in - d_out), meta_parameters(reference_learner)
    )
    learner = copy.deepcopy(reference_learner).float().to(DEVICE)
    assert learner.mixed_precision
    parts = ConMLObjective(case.settings)(learner, on_device(batch))
    for term, value in {"episodic": reference.episodic, "d_in": d_in, "d_out": d_out}.items():
        error = abs(getattr(parts, term).item() - value.item()) / max(abs(value.item()), 1e-12)
        assert error < 3e-2, f"{term} under bf16 autocast on {DEVICE.type}: relative error {error:.2e}"
    flat = lambda grads: torch.cat([g.flatten().double().cpu() for g in grads.values()])  # noqa: E731
    error = relative_error(flat(gradients(parts.total, meta_parameters(learner))), flat(expected_gradient))
    assert error < 1e-1, f"meta-gradient under bf16 autocast on {DEVICE.type} differs from float64 by {error:.2e}"


def test_episodes_and_caches_are_placed_on_the_device():
    """Image episodes are assembled on the device, preloaded splits live there, Meta-Dataset pads there,
    in-context prompts are drawn there."""
    images = source(
        "miniimagenet",
        root="unused",
        ways=5,
        shots=1,
        queries=2,
        train_ways=10,
        device=str(DEVICE),
        preload=True,
        synthetic=True,
    )
    batch = images.sample("train", 0, 2)
    assert batch.support.x.shape == (2, 10, 3, 84, 84) and batch.query.y.shape == (2, 20)
    assert {batch.support.x.device.type, batch.query.y.device.type, images._stored["train"].noise.device.type} == {
        DEVICE.type
    }
    assert torch.equal(images.sample("train", 1, 1).query.x.cpu(), batch.query.x[1:].cpu()), (
        "task 1 depends on its batch"
    )
    metadataset = source(
        "metadataset",
        root="unused",
        sources=["omniglot", "aircraft"],
        test_sources=["traffic_sign"],
        max_ways=8,
        max_support_set_size=20,
        device=str(DEVICE),
        synthetic=True,
    )
    episodes = metadataset.sample("train", 0, 3)
    assert episodes.support.x.device.type == DEVICE.type and episodes.support.x.dtype == torch.float32
    assert episodes.support.mask is None or episodes.support.mask.device.type == DEVICE.type
    assert metadataset.test_sets()["traffic_sign"].sample("test", 0, 1).query.x.device.type == DEVICE.type
    prompts = source(
        "linear_regression", dims=5, points=11, curriculum=None, meta_batch_size=4, device=str(DEVICE)
    ).sample("train", 0, 4)
    assert prompts.support.x.device.type == prompts.probe.device.type == DEVICE.type, (
        "training prompts are drawn on the device"
    )


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    """Sine waves, MAML + ConML with random subsets (the global RNG is restored too), on the device."""
    common = [
        *TINY,
        f"device={DEVICE}",
        "conml.subset=random",
        "conml.num_subsets=2",
        "conml.subset_fraction=0.5",
    ]
    straight = run(compose_config([*common, "trainer.steps=8"]), tmp_path / "straight")
    run(compose_config([*common, "trainer.steps=4"]), tmp_path / "resumed")
    resumed = run(compose_config([*common, "trainer.steps=8", f"resume={tmp_path / 'resumed'}"]), tmp_path / "resumed")
    assert resumed["test"] == straight["test"]
