"""Every Table 5 preset composes to the cell it names and runs a few steps with a tiny transformer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CONFIGS, compose_config

PRESETS = sorted(path.stem for path in (CONFIGS / "experiment").glob("table5_*.yaml"))
SHRINK = [
    "model.width=16",
    "model.depth=1",
    "model.heads=2",
    "trainer.val_episodes=2",
    "eval.episodes=2",
    "eval.batch_size=2",
]


def test_every_cell_has_a_preset():
    classes = ("linear_regression", "sparse_linear_regression", "decision_tree", "relu_net")
    assert PRESETS == sorted(
        f"table5_{c}_icl_{scale}_{method}"
        for c in classes
        for scale in ("toy", "paper")
        for method in ("plain", "conml")
    )


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_to_its_cell(preset):
    cfg = compose_config([f"experiment={preset}"])
    assert cfg.name == preset and cfg.learner._target_.endswith("InContextLearner")
    assert (cfg.model.width, cfg.model.depth, cfg.model.heads) == (256, 12, 8)
    assert cfg.conml.enabled == preset.endswith("_conml")
    if cfg.conml.enabled:
        assert (cfg.conml.lam, cfg.conml.phi, cfg.conml.subset, cfg.conml.subset_fraction) == (
            0.02,
            "sigmoid_squared",
            "prefix",
            0.5,
        )
    toy = "_toy_" in preset
    assert cfg.dataset.dims == (5 if toy else 20) and (cfg.dataset.curriculum is None) == toy
    assert cfg.trainer.steps == (5001 if toy else 500001) and cfg.trainer.meta_batch_size == 64


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs(preset, run_tiny):
    summary, run_dir = run_tiny([f"experiment={preset}", *SHRINK])
    assert summary["steps"] == 4 and Path(run_dir / "results.json").exists()
    assert summary["test"] and all(key.startswith("mse@") for key in summary["test"])
