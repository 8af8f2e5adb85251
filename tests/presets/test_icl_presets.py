"""Every Table 5 cell (configs/table/table5*.yaml) composes to the protocol it names and runs a few steps with a tiny transformer."""

from __future__ import annotations

from pathlib import Path

import pytest

from conml.tables.table_sweep import table_cells
from tests.conftest import compose_config

CELLS = [cell for table in ("table5", "table5_paper") for cell in table_cells(table)]
SHRINK = [
    "model.width=16",
    "model.depth=1",
    "model.heads=2",
    "trainer.val_episodes=2",
    "eval.episodes=2",
    "eval.batch_size=2",
]


def test_every_function_class_has_a_plain_and_a_conml_cell_at_both_scales():
    classes = ("linear_regression", "sparse_linear_regression", "decision_tree", "relu_net")
    assert sorted(c.run_name for c in CELLS) == sorted(
        f"{c}-{scale}-{method}" for c in classes for scale in ("toy", "paper") for method in ("plain", "conml")
    )


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.run_name)
def test_cell_composes_to_its_protocol(cell):
    cfg = compose_config(list(cell.overrides))
    assert cfg.name == cell.run_name and cfg.learner._target_.endswith("InContextLearner")
    assert (cfg.model.width, cfg.model.depth, cfg.model.heads) == (256, 12, 8)
    assert cfg.conml.enabled == cell.run_name.endswith("-conml")
    if cfg.conml.enabled:
        assert (cfg.conml.lam, cfg.conml.phi, cfg.conml.subset, cfg.conml.subset_fraction) == (
            0.02,
            "sigmoid_squared",
            "prefix",
            0.5,
        )
    toy = "-toy-" in cell.run_name
    assert cfg.dataset.dims == (5 if toy else 20) and (cfg.dataset.curriculum is None) == toy
    assert cfg.trainer.steps == (5001 if toy else 500001) and cfg.trainer.meta_batch_size == 64
    # The error is measured at three prompt lengths, the longest the prompt's last point.
    assert len(cfg.eval.shots) == 3 and cfg.eval.shots[-1] == cfg.dataset.points - 1


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.run_name)
def test_cell_runs(cell, run_tiny):
    summary, run_dir = run_tiny([*cell.overrides, *SHRINK])
    assert summary["steps"] == 4 and Path(run_dir / "results.json").exists()
    assert summary["test"] and all(key.startswith("mse@") for key in summary["test"])
