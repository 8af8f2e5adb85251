"""Every same-different preset composes and runs a few steps end to end, shrunk to tiny widths."""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONFIGS, compose_config
from tests.test_same_different_episodes import object_folder

PRESETS = sorted(p.stem for p in (CONFIGS / "experiment").glob("samediff_*.yaml"))


def tiny(preset: str) -> list[str]:
    """Overrides that keep the preset's depth and protocol but make it fast on a CPU."""
    depth = int(re.search(r"_conv(\d)_", preset)[1])
    overrides = [
        f"experiment={preset}",
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
    if not preset.endswith("_conventional"):
        overrides += ["learner.inner_steps=1", "learner.eval_inner_steps=2"]
    return overrides


def test_there_is_a_preset_per_table_cell():
    assert len([p for p in PRESETS if "_tableA1_" in p]) == 6
    assert {"samediff_tableB1_conv6_maml", "samediff_tableB1_conv6_fomaml", "samediff_loo_conv6_fomaml"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs(preset, run_tiny):
    summary, run_dir = run_tiny(tiny(preset), preset)
    assert summary["name"] == preset
    tested = ["lines"] if "_loo_" in preset else ["lines", "arrows"]
    assert sorted(summary["test"]) == sorted(f"{task}/accuracy@2shot" for task in tested), "one result per test task"
    assert all(0.0 <= result["mean"] <= 100.0 for result in summary["test"].values())
    assert (run_dir / "checkpoints" / "best.pt").exists()


def test_leave_one_out_preset_sweeps_every_held_out_task_and_ten_seeds():
    tasks = compose_config(["experiment=samediff_loo_conv6_fomaml"]).dataset.tasks
    params = OmegaConf.load(CONFIGS / "experiment" / "samediff_loo_conv6_fomaml.yaml").hydra.sweeper.params
    assert sorted(params["dataset.held_out"].split(",")) == sorted(tasks)
    assert params["seed"] == "range(42,52)"


def test_naturalistic_objects_run_through_a_table_preset(run_tiny, tmp_path):
    """The documented naturalistic command: a Table A1 preset on the object-photograph dataset."""
    objects = object_folder(tmp_path / "data" / "brady_objects")
    overrides = [o for o in tiny("samediff_tableA1_conv2_fomaml") if not o.startswith("dataset.tasks")]
    summary, _ = run_tiny(
        [*overrides, "dataset=same_different_naturalistic", f"paths.data_dir={objects.parent}"], "naturalistic"
    )
    assert list(summary["test"]) == ["naturalistic/accuracy@2shot"]
