"""The in-context learner: causal GPT-2, the learner seam on prompts, the shared probe, training."""

from __future__ import annotations

import json

import torch

from conml.distances import Distance
from conml.episodes import EpisodeBatch, Tasks
from conml.learners.base import Adaptation
from conml.learners.icl import InContextLearner
from conml.objective import ConMLObjective, ConMLSettings, SubsetStrategy
from conml.task_kind import REGRESSION
from tests.dataset_settings import source
from tests.learner_settings import configured
from tests.net_settings import configured_net

ICL_TINY = ["experiment=icl/toy", "dataset=linear_regression", "model.width=16", "model.depth=2", "model.heads=2"]


def _learner(dims: int = 4, seed: int = 0) -> InContextLearner:
    torch.manual_seed(seed)
    return configured(
        "icl", configured_net("gpt2", in_features=dims, width=16, depth=2, heads=2, max_positions=32), REGRESSION
    )


def _batch(count: int = 3, points: int = 7) -> EpisodeBatch:
    prompts = source("linear_regression", dims=4, points=points, curriculum=None, meta_batch_size=count)
    return prompts.sample("train", 0, count)


def test_gpt2_output_sees_only_earlier_tokens():
    net = configured_net("gpt2", in_features=3, width=16, depth=2, heads=4, max_positions=10)
    tokens = torch.randn(2, 8, 3)
    changed = tokens.clone()
    changed[:, 5:] = torch.randn(2, 3, 3)
    before, after = net(tokens), net(changed)
    assert torch.allclose(before[:, :5], after[:, :5], atol=1e-6)
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_one_pass_gives_every_prefix_prediction():
    learner, batch = _learner(), _batch()
    whole = batch.whole
    with torch.no_grad():
        prefixes, at_probe = learner.prefix_predictions(whole, batch.probe)
        for k in range(whole.num_examples):
            alone = learner.predict(learner.adapt(whole.first(k), Adaptation.meta_test), whole.x[:, k : k + 1])
            assert torch.allclose(prefixes[:, k], alone[:, 0], atol=1e-5)
        assert torch.allclose(at_probe, learner.represent(learner.adapt(whole, Adaptation.meta_test), batch), atol=1e-5)


def test_queries_do_not_see_each_other():
    learner, batch = _learner(), _batch()
    with torch.no_grad():
        models = learner.adapt(batch.support, Adaptation.meta_test)
        together = learner.predict(models, batch.whole.x[:, :3])
        apart = torch.cat([learner.predict(models, batch.whole.x[:, i : i + 1]) for i in range(3)], dim=1)
    assert torch.allclose(together, apart, atol=1e-6)


def test_the_probe_is_shared_by_every_task_of_the_batch():
    learner, batch = _learner(), _batch(count=4)
    with torch.no_grad():
        e = learner.represent(learner.adapt(batch.whole, Adaptation.meta_test), batch)
        for task in range(4):
            prompt = Tasks(batch.whole.x[task : task + 1], batch.whole.y[task : task + 1])
            alone = learner.predict(learner.adapt(prompt, Adaptation.meta_test), batch.probe.view(1, 1, 4))
            assert torch.allclose(e[task], alone[0, 0], atol=1e-6)
    assert e.shape == (4, 1) and e.std() > 0  # one scalar per task, different across tasks


def test_conml_reads_the_loss_e_star_and_e_kappa_off_one_pass():
    """With kappa a prefix, one forward of the net gives L_e, e* and e^kappa; without ConML, the plain causal pass."""
    learner, batch = _learner(), _batch(count=4)
    calls = []
    learner.net.register_forward_hook(
        lambda module, args, kwargs, out: calls.append((args[0].shape[1], kwargs.get("readers", ()))), with_kwargs=True
    )
    settings = ConMLSettings(lam=0.02, phi=Distance.sigmoid_squared, subset=SubsetStrategy.prefix, subset_fraction=0.5)
    parts = ConMLObjective(settings)(learner, batch)
    assert calls == [(2 * 7 + 2, [14, 6])]  # 7 pairs, then probes reading all 7 and the first 3
    with torch.no_grad():
        loss = learner.episodic_loss(batch, Adaptation.meta_test).loss
        e_star = learner.predict(learner.adapt(batch.whole, Adaptation.meta_test), batch.probe.expand(4, 1, 4))[:, 0]
        e_half = learner.predict(
            learner.adapt(batch.whole.first(3), Adaptation.meta_test), batch.probe.expand(4, 1, 4)
        )[:, 0]
    assert calls[1] == (2 * 7 - 1, ())  # the plain loss: the last y is never a context
    assert torch.allclose(parts.episodic, loss, atol=1e-6)
    assert torch.allclose(parts.d_in, torch.sigmoid((e_half - e_star).pow(2).sum(-1)).mean(), atol=1e-6)


def test_evaluate_is_the_error_at_the_query_after_k_examples():
    learner = _learner()
    prompts = source("linear_regression", dims=4, points=7)
    batch = prompts.sample("test", 0, 5, shots=3, queries=1)
    with torch.no_grad():
        prefixes, _ = learner.prefix_predictions(prompts.sample("test", 0, 5).whole)
    expected = (prefixes[:, 3, 0] - batch.query.y[:, 0, 0]).pow(2)
    assert torch.allclose(learner.evaluate(batch), expected, atol=1e-5)


def test_a_short_training_run_lowers_the_loss(run_tiny):
    overrides = [*ICL_TINY, "dataset.dims=2", "dataset.points=6", "optimizer.lr=0.003", "trainer.meta_batch_size=32"]
    overrides += [
        "trainer.steps=40",
        "trainer.log_every=10",
        "trainer.val_every=40",
        "trainer.ckpt_every=40",
        "eval.shots=[5]",
    ]
    _, run_dir = run_tiny(overrides)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [line["train/loss"] for line in lines if "train/loss" in line]
    assert len(losses) == 4
    assert sum(losses[-2:]) / 2 < 0.8 * losses[0], losses
