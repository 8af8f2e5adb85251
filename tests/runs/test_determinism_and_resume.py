"""Same seed, same episodes and numbers; a resumed run ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json

import pytest
import torch

from conml.checkpoint import load_checkpoint
from conml.errors import ConfigError
from conml.train import run
from tests.conftest import TINY, compose_config
from tests.dataset_settings import source

# Random subsets draw from the global RNG, so resuming must restore it to match.
RANDOM_SUBSETS = ["conml.subset=random", "conml.num_subsets=2", "conml.subset_fraction=0.5"]


def logged_metrics(run_dir):
    """metrics.jsonl without the wall-clock throughput, which legitimately varies."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "train/tasks_per_s"} for line in lines]


def test_episodes_are_a_function_of_seed_split_and_index():
    waves = source("sinusoid", seed=3)
    whole = waves.sample("test", 0, 6)
    again = waves.sample("test", 2, 3)
    assert torch.equal(whole.support.x[2:5], again.support.x) and torch.equal(whole.query.y[2:5], again.query.y)
    assert not torch.equal(waves.sample("val", 0, 6).support.x, whole.support.x)
    assert not torch.equal(source("sinusoid", seed=4).sample("test", 0, 6).support.x, whole.support.x)


def test_same_seed_gives_the_same_metrics(run_tiny):
    first, first_dir = run_tiny(RANDOM_SUBSETS, "a")
    second, second_dir = run_tiny(RANDOM_SUBSETS, "b")
    assert first["test"] == second["test"]
    assert (first_dir / "metrics.jsonl").read_text() != ""
    assert logged_metrics(first_dir) == logged_metrics(second_dir)
    other, _ = run_tiny([*RANDOM_SUBSETS, "seed=1"], "c")
    assert other["test"] != first["test"]


def test_resume_matches_an_uninterrupted_run(tmp_path):
    steps = ["trainer.steps=8"]
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight = run(compose_config([*TINY, *RANDOM_SUBSETS, *steps]), straight_dir)

    run(compose_config([*TINY, *RANDOM_SUBSETS, "trainer.steps=4"]), resumed_dir)  # the "interrupted" run
    resumed = run(compose_config([*TINY, *RANDOM_SUBSETS, *steps, f"resume={resumed_dir}"]), resumed_dir)

    assert resumed["test"] == straight["test"]
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt")["learner"] for d in (straight_dir, resumed_dir))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert logged_metrics(resumed_dir) == logged_metrics(straight_dir), (
        "a resumed run logs each step once, with the same values"
    )


def test_resume_refuses_changed_settings_and_existing_runs_are_not_overwritten(tmp_path):
    run(compose_config([*TINY]), tmp_path)
    with pytest.raises(ConfigError, match="conml.lam"):
        run(compose_config([*TINY, "conml.lam=0.5", f"resume={tmp_path}"]), tmp_path)
    with pytest.raises(ConfigError, match="already holds a run"):
        run(compose_config([*TINY]), tmp_path)
    with pytest.raises(ConfigError, match="there is no such folder"):
        run(compose_config([*TINY, f"resume={tmp_path / 'absent'}"]), tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no checkpoints/last.pt"):
        run(compose_config([*TINY, f"resume={tmp_path / 'empty'}"]), tmp_path / "empty")
    assert not (tmp_path / "absent").exists() and not any((tmp_path / "empty").iterdir())
