"""Every experiment preset composes; Table 2's sine-wave cells run a few steps end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from conml.tables.table_sweep import table_cells
from tests.conftest import CONFIGS, compose_config

PRESETS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
SINE_CELLS = table_cells("table2") + table_cells("table2_ablation")


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_and_names_its_run(preset):
    cfg = compose_config([f"experiment={preset}"])
    assert cfg.name == preset, "a preset's name is its W&B group and output folder; keep it equal to the file name"
    assert "_target_" in cfg.dataset and "_target_" in cfg.learner


@pytest.mark.parametrize("cell", SINE_CELLS, ids=lambda cell: cell.run_name)
def test_sine_cell_runs(cell, run_tiny):
    summary, run_dir = run_tiny([*cell.overrides, "eval.episodes=4", "eval.queries=5"], cell.run_name)
    assert Path(run_dir, "results.json").exists()
    (metric,) = summary["test"]
    assert metric.startswith("mse@")
