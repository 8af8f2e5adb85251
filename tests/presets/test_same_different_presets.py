"""Every same-different table cell and preset composes and runs a few steps end to end, shrunk to tiny widths."""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from conml.tables.table_sweep import every_sweep_cell, preset_overrides, table_cells
from tests.conftest import CONFIGS, compose_config
from tests.data.test_same_different_episodes import object_folder

# The cells of Tables A1 and B1 (by run name) and the leave-one-out protocol.
PRESETS = sorted(
    [n for n in every_sweep_cell() if n.startswith("same_different-")]
    + [p.stem for p in (CONFIGS / "experiment").glob("samediff_*.yaml")]
)


def tiny(preset: str) -> list[str]:
    """Overrides that keep the preset's depth and protocol but make it fast on a CPU."""
    depth = int(re.search(r"conv(\d)", preset)[1])
    overrides = [
        *preset_overrides(preset),
        f"model.channels=[{','.join(['2'] * depth)}]",
        "model.fc_units=8",
        "dataset.tasks=[lines,arrows]",
        "dataset.support_sizes=[2]",
        "dataset.episodes=[4,2,2]",
        "trainer.steps=2",
        "trainer.meta_batch_size=1",
        "trainer.val_episodes=1",
        "eval.batch_size=1",
        "eval.episodes=1",
        "eval.shots=[2]",
    ]
    if "conventional" not in preset:
        overrides += ["learner.inner_steps=1", "learner.eval_inner_steps=2"]
    if "_loo_" in preset:
        overrides.append("dataset.held_out=lines")  # one of the two tiny tasks
    return overrides


def test_there_is_a_run_per_table_cell():
    assert len(table_cells("samediff")) == 6
    assert {"same_different-maml-kim_conv6", "same_different-fomaml-kim_conv6", "samediff_loo_conv6_fomaml"} <= set(
        PRESETS
    )
    b1_fomaml = table_cells("samediff_order")[0]
    assert b1_fomaml.run_name in {c.run_name for c in table_cells("samediff")}, (
        "Table B1 reads Table A1's Conv6 FOMAML runs"
    )


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs(preset, run_tiny):
    summary, run_dir = run_tiny(tiny(preset), preset)
    assert summary["name"] == preset
    tested = ["lines"] if "_loo_" in preset else ["lines", "arrows"]
    assert sorted(summary["test"]) == sorted(f"{task}/accuracy@2shot" for task in tested), "one result per test task"
    assert all(0.0 <= result["mean"] <= 100.0 for result in summary["test"].values())
    assert (run_dir / "checkpoints" / "best.pt").exists()


def test_leave_one_out_table_sweeps_every_held_out_task_and_ten_seeds():
    tasks = compose_config(["experiment=samediff_loo_conv6_fomaml"]).dataset.tasks
    params = OmegaConf.load(CONFIGS / "table" / "samediff_loo.yaml").hydra.sweeper.params
    assert sorted(params["dataset.held_out"].split(",")) == sorted(tasks)
    assert params["seed"] == ",".join(str(seed) for seed in range(42, 52))


def test_naturalistic_objects_run_through_a_table_preset(run_tiny, tmp_path):
    """The documented naturalistic command: a Table A1 preset on the object-photograph dataset."""
    objects = object_folder(tmp_path / "data" / "brady_objects")
    overrides = [o for o in tiny("same_different-fomaml-kim_conv2") if not o.startswith(("dataset.tasks", "dataset="))]
    summary, _ = run_tiny(
        [*overrides, "dataset=same_different_naturalistic", f"paths.data_dir={objects.parent}"], "naturalistic"
    )
    assert list(summary["test"]) == ["naturalistic/accuracy@2shot"]
