"""Searches beyond grids: main returns the run's optimize_metric (its best validation score), and
`hparams_search=sine_optuna` drives Optuna over lambda and the inner learning rate with it."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from conml.config import metric_direction
from conml.errors import ConfigError
from conml.multirun_jobs import JobOutcome
from tests.conftest import CONFIGS, TINY
from tests.wandb_file import run_record

SEARCH = [
    "-m",
    "hparams_search=sine_optuna",
    "experiment=sine/conml",
    "dataset.shots=5",
]  # as docs/sweeps.md writes it
RANGES = {"conml.lam": (0.01, 10.0), "learner.inner_lr": (0.001, 0.1)}


def best_validation(run_dir: Path, metric: str = "val/mse") -> float:
    """The lowest validation MSE the run logged, read from its metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return min(row[metric] for row in rows if metric in row)


def test_main_returns_the_best_validation_score_of_a_plain_run(tmp_path):
    from conml.train import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, "trainer.steps=6"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]

    outcome = main(cfg)  # a config passed in: Hydra calls the function itself and hands back its value

    results = json.loads((run_dir / "results.json").read_text())
    assert results["optimized"] == {"metric": "val/mse", "value": float(outcome)}
    assert float(outcome) == best_validation(run_dir), "the best of the validations at steps 2, 4 and 6"
    assert outcome.test == results["test"] and outcome.error is None


def test_a_search_of_three_trials_reports_the_best_job(tmp_path):
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        "-m",
        "conml.train",
        *SEARCH,
        "hydra.sweeper.n_trials=3",
        *TINY,
        "logger.mode=offline",
        f"hydra.sweep.dir={sweep}",
    ]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]

    jobs = sorted(path.parent for path in sweep.glob("*/results.json"))
    assert [job.name.split("_", 1)[0] for job in jobs] == ["0", "1", "2"]
    values, scores = [], []
    for job in jobs:
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))
        chosen = {key: float(overrides[key]) for key in RANGES}
        assert all(low <= chosen[key] <= high for key, (low, high) in RANGES.items()), chosen
        config = json.loads((job / "results.json").read_text())["config"]
        assert (config["conml"]["lam"], config["learner"]["inner_lr"]) == (
            chosen["conml.lam"],
            chosen["learner.inner_lr"],
        )
        assert config["name"] == "sinusoid-maml-5shot-conml"
        rounded = {key: f"{value:.4g}" for key, value in chosen.items()}
        label = f"conml.lam={rounded['conml.lam']},learner.inner_lr={rounded['learner.inner_lr']}"
        assert job.name.split("_", 1)[1] == f"sinusoid-maml-5shot-conml_{label}", "numbers rounded to 4 digits"
        (wandb_file,) = job.glob("wandb/offline-run-*/run-*.wandb")
        assert run_record(wandb_file).display_name == f"sinusoid-maml-5shot-conml_{label},seed=0", "no job number"
        optimized = json.loads((job / "results.json").read_text())["optimized"]
        assert optimized["metric"] == "val/mse" and optimized["value"] == best_validation(job)
        values.append(chosen)
        scores.append(optimized["value"])
    assert len({tuple(v.values()) for v in values}) == 3, "every trial tried other values"

    best = min(range(3), key=scores.__getitem__)  # val/mse: lower is better
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == scores[best]
    assert result["best_params"] == values[best]
    assert f"Multirun {sweep}: 3 job(s), 3 finished" in finished.stdout


def test_the_search_direction_follows_the_metric():
    assert metric_direction("val/mse") == "minimize" and metric_direction("val/accuracy") == "maximize"
    with pytest.raises(ConfigError, match="val/mse, val/accuracy"):
        metric_direction("test/mse@5shot")
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        hydra = compose(
            "train",
            overrides=["hparams_search=sine_optuna", "optimize_metric=val/accuracy", "hydra/launcher=slurm"],
            return_hydra_config=True,
        ).hydra
    assert hydra.sweeper.direction == "maximize" and hydra.sweeper.sampler.seed == 0
    assert hydra.launcher._target_.endswith("SlurmLauncher"), "a search runs its trials on the cluster as well"


def test_a_metric_the_run_does_not_report_is_refused_at_start_up(run_tiny):
    with pytest.raises(ConfigError, match="optimize_metric=val/accuracy, but this run is validated by val/mse"):
        run_tiny(["optimize_metric=val/accuracy"])


def test_a_failed_job_is_a_trial_without_a_value():
    failed = pickle.loads(pickle.dumps(JobOutcome(error="conml.lam=-1.0 is out of range")))
    with pytest.raises(TypeError, match="out of range"):
        float(failed)  # Optuna's sweeper records the trial as failed and goes on
    assert float(pickle.loads(pickle.dumps(JobOutcome(0.25, {"mse@5shot": {}})))) == 0.25
