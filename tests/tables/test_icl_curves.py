"""Curves of error against in-context examples: baselines, the comparison metrics, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conml.errors import ConfigError
from conml.evaluate import evaluate
from conml.icl_baselines import averaging, nearest_neighbours
from conml.icl_curves import Curve, baseline_curves, learner_curve, relative_minimum_error, shot_spare
from conml.learners.icl import InContextLearner
from conml.task_kind import REGRESSION
from scripts.icl_curves import main as icl_curves_cli
from tests.dataset_settings import source as prompts
from tests.learner_settings import configured
from tests.net_settings import configured_net

ROOT = Path(__file__).resolve().parents[2]
ICL_TINY = [
    "model.width=16",
    "model.depth=1",
    "model.heads=2",
    "eval.shots=[4]",
    "eval.episodes=16",
    "eval.batch_size=8",
]


def test_least_squares_solves_noiseless_linear_prompts_from_d_points():
    source = prompts("linear_regression", dims=5, points=11)
    curves = {c.name: c for c in baseline_curves(source, episodes=64, batch_size=32)}
    least_squares = curves["least squares"]
    assert least_squares.shots == list(range(11))
    assert max(least_squares.mean[5:]) < 1e-8  # d = 5 points determine w
    assert min(least_squares.mean[:4]) > 0.5  # fewer points leave directions unknown
    assert least_squares.mean[0] == pytest.approx(curves["averaging"].mean[0])  # both predict 0 with no examples


def test_averaging_and_nearest_neighbours_by_hand():
    x = torch.tensor([[[1.0], [2.0], [4.0], [2.5]]])
    y = torch.tensor([[2.0, 6.0, 8.0, 1.0]])
    # averaging: x_i y_i = 2, 12, 32, so w_k = 2, 7, 46/3 over the first k pairs; predictions at x_{k+1}
    assert torch.allclose(averaging(x, y), torch.tensor([[0.0, 2.0 * 2, 7.0 * 4, 46 / 3 * 2.5]]))
    # 2 nearest earlier points: none; {1}; {2, 1}; {2, 4} for x = 2.5
    assert torch.allclose(nearest_neighbours(x, y, neighbours=2), torch.tensor([[0.0, 2.0, 4.0, 7.0]]))


def test_relative_minimum_error_and_shot_spare_by_hand():
    icl = Curve("icl", [0, 1, 2, 3, 4, 5], [5.0, 4.0, 3.0, 2.0, 1.5, 1.6], [0.0] * 6)
    conml = Curve("conml", [0, 1, 2, 3, 4, 5], [4.0, 3.0, 1.2, 1.0, 0.9, 1.1], [0.0] * 6)
    assert relative_minimum_error(icl, conml) == pytest.approx(0.9 / 1.5)
    assert shot_spare(icl, conml) == 2 - 4  # conml reaches 1.5 with 2 shots, icl needs 4
    assert shot_spare(conml, icl) is None  # icl never gets down to 0.9
    assert shot_spare(icl, icl) == 0


def test_learner_curve_agrees_with_meta_testing_at_each_shot():
    torch.manual_seed(0)
    learner = configured(
        "icl", configured_net("gpt2", in_features=3, width=16, depth=1, heads=2, max_positions=16), REGRESSION
    )
    source = prompts("decision_tree", functions={"depth": 2}, dims=3, points=6)
    curve = learner_curve("icl", learner, source, episodes=10, batch_size=4, device=torch.device("cpu"))
    for k in (0, 2, 5):
        at_k = evaluate(learner, source, "test", 10, 3, torch.device("cpu"), shots=k, queries=1, progress=False)
        assert curve.mean[k] == pytest.approx(at_k.mean, rel=1e-5)


def test_cli_compares_two_runs_and_writes_curves(run_tiny, tmp_path):
    _, plain = run_tiny(["experiment=icl/toy", "dataset=linear_regression", *ICL_TINY], name="plain")
    _, conml = run_tiny(["experiment=icl/toy", "dataset=linear_regression", "conml=icl", *ICL_TINY], name="conml")
    metrics = icl_curves_cli([str(plain), str(conml), "--out", str(tmp_path / "curves")])
    payload = json.loads((tmp_path / "curves" / "curves.json").read_text())
    names = [c["name"] for c in payload["curves"]]
    assert names[:2] == ["linear_regression-toy-plain", "linear_regression-toy-conml"]
    assert {"least squares", "averaging", "3-nearest neighbours"} <= set(names)
    assert all(len(c["mean"]) == 11 for c in payload["curves"])
    assert (
        payload["metrics"]["relative_minimum_error"] == pytest.approx(metrics["relative_minimum_error"])
        and metrics["relative_minimum_error"] > 0
    )
    assert (tmp_path / "curves" / "curves.png").stat().st_size > 0

    _, trees = run_tiny(["experiment=icl/toy", "dataset=decision_tree", *ICL_TINY], name="trees")
    with pytest.raises(ConfigError, match="other tasks"):
        icl_curves_cli([str(plain), str(trees), "--out", str(tmp_path / "mixed")])


def test_cli_reads_the_checkpoint_the_run_meta_tested(run_tiny, tmp_path):
    """eval.checkpoint=best is stored as the config's enum; the curves read checkpoints/best.pt."""
    _, run_dir = run_tiny(["experiment=icl/toy", "dataset=linear_regression", *ICL_TINY, "eval.checkpoint=best"])
    icl_curves_cli([str(run_dir), "--out", str(tmp_path / "curves")])
    payload = json.loads((tmp_path / "curves" / "curves.json").read_text())
    assert payload["test_set"]["checkpoints"] == {"linear_regression-toy-plain": "best"}


def test_cli_says_a_run_that_is_not_in_context_learning_is_not_one(run_tiny):
    """Through the real command line: one paragraph, exit status 2, nothing written."""
    _, run_dir = run_tiny()  # sine waves, MAML; meta-tested at checkpoints/best.pt
    before = sorted(path.name for path in run_dir.iterdir())
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "icl_curves.py"), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().startswith(f"error: {run_dir} is not an in-context learning run"), result.stderr
    assert "learner=icl" in result.stderr and "Checkpoint" not in result.stderr
    assert sorted(path.name for path in run_dir.iterdir()) == before
