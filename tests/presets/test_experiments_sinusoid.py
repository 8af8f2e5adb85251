"""Every experiment preset composes; the sine-wave presets run a few steps end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CONFIGS, compose_config

PRESETS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
SINE_PRESETS = [p for p in PRESETS if "_sinusoid_" in p]


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_and_names_its_run(preset):
    cfg = compose_config([f"experiment={preset}"])
    assert cfg.name == preset, "a preset's name is its W&B group and output folder; keep it equal to the file name"
    assert "_target_" in cfg.dataset and "_target_" in cfg.learner


@pytest.mark.parametrize("preset", SINE_PRESETS)
def test_sine_preset_runs(preset, run_tiny):
    summary, run_dir = run_tiny([f"experiment={preset}", "eval.episodes=4", "eval.queries=5"], preset)
    assert Path(run_dir, "results.json").exists()
    (metric,) = summary["test"]
    assert metric.startswith("mse@")
