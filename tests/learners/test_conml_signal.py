"""ConML's gradient share: a hand computation, bit-identical training, logging, the inert warning,
and the psi options (each trains, a wrong one is refused with the allowed values)."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

from conml.distances import Distance
from conml.distributed import TaskShard
from conml.errors import ConfigError
from conml.gradient_share import gradient_share
from conml.learners.matchingnet import MatchingNet
from conml.learners.protonet import ProtoNet
from conml.objective import ConMLObjective, ConMLSettings
from conml.task_kind import CLASSIFICATION
from tests.conftest import compose_config
from tests.learner_settings import configured
from tests.learners.test_objective import MeanLearner, cosine, hand_distances, sigmoid_squared, tiny_batch
from tests.net_settings import configured_net

LAM = 0.3


def double_batch():
    batch = tiny_batch()
    return type(batch)(
        type(batch.support)(batch.support.x.double(), batch.support.y.double()),
        type(batch.query)(batch.query.x.double(), batch.query.y.double()),
    )


def hand_losses(scale: float) -> tuple[float, float]:
    """(episodic, lambda * (d_in - d_out)) of MeanLearner at `scale`, in plain Python floats."""
    batch = double_batch()
    support, query = batch.support.x.double().tolist(), batch.query.x.double().tolist()
    errors = []
    for s, q in zip(support, query):
        prediction = scale * sum(x[0] for x in s) / len(s)
        errors += [(prediction - 0.5 * x[0]) ** 2 for x in q]
    scaled = type(batch)(
        type(batch.support)(batch.support.x * scale, batch.support.y),
        type(batch.query)(batch.query.x * scale, batch.query.y),
    )
    d_in, d_out = hand_distances(scaled, sigmoid_squared)
    return sum(errors) / len(errors), LAM * (d_in - d_out)


def test_gradient_share_equals_a_hand_computation():
    learner, batch = MeanLearner().double(), double_batch()
    parts = ConMLObjective(ConMLSettings(lam=LAM, phi=Distance.sigmoid_squared))(learner, batch)
    learner.zero_grad()
    parts.total.backward(retain_graph=True)
    share, conml_norm, episodic_norm = gradient_share(parts.contrastive, list(learner.parameters()), TaskShard())

    h = 1e-6  # central differences of the hand-computed losses in the single parameter `scale`
    (episodic_up, conml_up), (episodic_down, conml_down) = hand_losses(1 + h), hand_losses(1 - h)
    hand_episodic, hand_conml = abs(episodic_up - episodic_down) / (2 * h), abs(conml_up - conml_down) / (2 * h)
    assert conml_norm == pytest.approx(hand_conml, rel=1e-6)
    assert episodic_norm == pytest.approx(hand_episodic, rel=1e-6)
    assert share == pytest.approx(hand_conml / hand_episodic, rel=1e-6)


def metric_lines(run_dir, key: str) -> list[float]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line[key] for line in lines if key in line]


def test_measuring_the_share_leaves_training_bit_identical_and_is_reported(run_tiny, capsys):
    measured, measured_dir = run_tiny(["trainer.grad_share_every=1"], name="measured")
    unmeasured, unmeasured_dir = run_tiny(["trainer.grad_share_every=0"], name="unmeasured")
    assert measured["test"] == unmeasured["test"]
    assert metric_lines(measured_dir, "train/loss") == metric_lines(unmeasured_dir, "train/loss")

    shares = metric_lines(measured_dir, "train/conml_grad_share")
    assert len(shares) == measured["conml_grad_share_measurements"] == 4 and all(s > 0 for s in shares)
    assert measured["conml_grad_share_median"] == pytest.approx(statistics.median(shares))
    assert unmeasured["conml_grad_share_median"] is None and not metric_lines(unmeasured_dir, "train/conml_grad_share")
    assert "conml_grad_share" in capsys.readouterr().out


def test_inert_conml_is_warned_about_once_and_an_active_one_is_not(run_tiny, capsys):
    run_tiny(["trainer.grad_share_every=1"], name="paper_psi")  # psi = adapted weights: share ~1e-5
    output = capsys.readouterr()
    warnings = (output.out + output.err).count("ConML is numerically inert")
    assert warnings == 1
    assert "conml.centring=meta_batch" in output.out + output.err
    run_tiny(["trainer.grad_share_every=1", "learner.representation=update"], name="update_psi")
    output = capsys.readouterr()
    assert "numerically inert" not in output.out + output.err


def test_conml_off_measures_nothing(run_tiny):
    summary, run_dir = run_tiny(["conml=off", "trainer.grad_share_every=1"])
    assert summary["conml_grad_share_median"] is None and not metric_lines(run_dir, "train/conml_grad_share")


SINE_OPTIONS = [
    ["learner=maml", "learner.representation=weights"],
    ["learner=maml", "learner.representation=update"],
    ["learner=maml", "conml.centring=meta_batch"],
    ["learner=fomaml", "learner.representation=update"],
    ["learner=fomaml", "conml.centring=meta_batch"],
    ["learner=reptile", "optimizer=sgd", "learner.representation=update", "learner.eval_inner_steps=2"],
    ["learner=reptile", "optimizer=sgd", "conml.centring=meta_batch", "learner.eval_inner_steps=2"],
]


@pytest.mark.parametrize("overrides", SINE_OPTIONS, ids=[" ".join(o) for o in SINE_OPTIONS])
def test_every_weight_psi_option_trains_two_steps(overrides, run_tiny):
    summary, _ = run_tiny([*overrides, "trainer.steps=2", "trainer.grad_share_every=1"])
    assert summary["steps"] == 2 and math.isfinite(summary["test"]["mse@10shot"]["mean"])
    assert summary["conml_grad_share_measurements"] == 2


def test_centring_on_the_meta_batch_is_exact():
    """d_in and d_out with centring equal the uncentred objective on representations minus the mean e*."""
    learner, batch = MeanLearner().double(), double_batch()
    parts = ConMLObjective(ConMLSettings(centring="meta_batch"))(learner, batch)
    centre = batch.whole.x.mean(1).mean(0)
    shifted = type(batch)(
        type(batch.support)(batch.support.x - centre, batch.support.y),
        type(batch.query)(batch.query.x - centre, batch.query.y),
    )
    d_in, d_out = hand_distances(shifted, cosine)
    assert float(parts.d_in.detach()) == pytest.approx(d_in, rel=1e-12) and float(
        parts.d_out.detach()
    ) == pytest.approx(d_out, rel=1e-12)


@pytest.mark.parametrize(
    "learner, allowed",
    [("maml", ["weights", "update"]), ("fomaml", ["weights", "update"]), ("reptile", ["weights", "update"])],
)
def test_a_wrong_weight_psi_is_refused_at_start_up_with_the_allowed_ones(learner, allowed, tmp_path):
    from conml.train import run

    with pytest.raises(ConfigError) as refused:
        run(
            compose_config(
                [f"learner={learner}", "learner.representation=bogus", "logger.mode=disabled", "device=cpu"]
            ),
            tmp_path / "run",
        )
    message = str(refused.value)
    assert "learner.representation" in message and "bogus" in message and all(a in message for a in allowed)


@pytest.mark.parametrize("learner", ["protonet", "matchingnet"])
def test_a_wrong_prototype_psi_is_refused_with_the_allowed_ones(learner):
    with pytest.raises(
        ConfigError, match=r"learner.representation must be one of \['prototypes', 'centred'\], got 'bogus'"
    ):
        configured(
            learner,
            configured_net("conv4", hidden=4, out_features=None, image_size=16),
            CLASSIFICATION,
            representation="bogus",
        )


def test_a_lambda_that_makes_conml_dominate_is_warned_about_once(run_tiny, capsys):
    run_tiny(["conml.lam=1e4", "learner.representation=update"])
    output = capsys.readouterr()
    text = output.out + output.err
    assert text.count("outweighs the episodic loss") == 1 and "Lower conml.lam" in text
    run_tiny(["learner.representation=update"], name="paper_lambda")
    output = capsys.readouterr()
    assert "outweighs the episodic loss" not in output.out + output.err


def test_the_survey_finds_the_papers_psi_inert_on_sine_waves_and_update_acting():
    """docs/results/conml_signal.md's first rows, recomputed: the share of the Table 2 preset at initialisation."""
    from conml.signal_survey import measure, paper_cases

    sine = {case.psi: case for case in paper_cases(image_tasks=2) if case.learner.startswith("sine")}
    paper, update = measure(sine["weights (paper)"]), measure(sine["update"])
    assert paper["share"] < 1e-4 < 1e-2 < update["share"]
    assert paper["d_in"] < 1e-3 and update["d_in"] > 1e-2


def test_a_non_finite_gradient_share_stops_the_run_as_a_divergence(run_tiny, monkeypatch, capsys):
    """An episodic loss without gradient (as in a 1-way task) made the share pull / 1e-300 = 2.5e+292, printed as a number."""
    from conml.trainer import TrainingDiverged

    real_call = ConMLObjective.__call__

    def no_episodic_gradient(self, learner, batch):
        parts = real_call(self, learner, batch)
        parts.total = parts.total - parts.episodic + parts.episodic.detach()
        return parts

    monkeypatch.setattr(ConMLObjective, "__call__", no_episodic_gradient)
    with pytest.raises(TrainingDiverged, match="gradient share became non-finite") as error:
        run_tiny(["trainer.grad_share_every=1", "learner.representation=update"])
    assert "share inf" in str(error.value) and "No checkpoint was written" in str(error.value)
    output = capsys.readouterr()
    assert "conml_grad_share" not in output.out + output.err
