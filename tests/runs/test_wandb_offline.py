"""The offline W&B run file holds what we log; a resumed run continues the same W&B run; its summary holds
the best validation score; the console is captured; `logger.log_artifacts=true` adds the run's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conml.config import LoggerConfig, WandbMode, metric_direction
from conml.tracking import Tracker
from conml.train import run
from tests.conftest import TINY, compose_config
from tests.wandb_file import artifacts, config, console, history, read_records, run_record, summary

ROOT = Path(__file__).resolve().parents[2]

OFFLINE = ["logger.mode=offline", "logger.tags=[unit,sine]", "name=wandb-check"]


def run_files(run_dir):
    return sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


def test_offline_run_file_holds_the_logged_keys(tmp_path):
    run(compose_config([*TINY, *OFFLINE]), tmp_path)
    (path,) = run_files(tmp_path)
    rows = history(path)
    keys = set().union(*rows)
    assert {
        "train/loss",
        "train/loss_episodic",
        "train/d_in",
        "train/d_out",
        "train/lr",
        "train/tasks_per_s",
        "val/mse",
        "train/conml_grad_share",
    } <= keys
    assert [row["_step"] for row in rows] == [1, 2, 4]  # the gradient share is measured at the first step
    logged = config(path)
    assert logged["conml"]["lam"] == 0.1 and logged["learner"]["_target_"] == "conml.learners.maml.MAML"
    record = run_record(path)
    assert record.project == "conml" and record.run_group == "wandb-check" and list(record.tags) == ["unit", "sine"]
    assert record.display_name == "wandb-check_seed=0", "a single run is named by its cell and seed, not at random"
    summaries = [r.summary for r in read_records(path) if r.WhichOneof("record_type") == "summary"]
    assert any(item.key == "test/mse@10shot" for s in summaries for item in s.update)


def test_logger_name_names_the_run(tmp_path):
    run(compose_config([*TINY, *OFFLINE, "seed=4", "logger.name=my-run"]), tmp_path)
    (path,) = run_files(tmp_path)
    assert run_record(path).display_name == "my-run"


def test_resume_continues_the_same_wandb_run(tmp_path):
    run(compose_config([*TINY, *OFFLINE]), tmp_path)
    run(compose_config([*TINY, *OFFLINE, "trainer.steps=6", f"resume={tmp_path}"]), tmp_path)
    files = run_files(tmp_path)
    assert len(files) == 2
    assert len({run_record(f).run_id for f in files}) == 1
    assert [row["_step"] for row in history(files[-1])] == [6]


def test_summary_holds_the_best_validation_score_and_its_step(tmp_path):
    run(compose_config([*TINY, *OFFLINE]), tmp_path)
    (path,) = run_files(tmp_path)
    validations = [(row["_step"], row["val/mse"]) for row in history(path) if "val/mse" in row]
    best_step, best = min(validations, key=lambda pair: pair[1])
    final = summary(path)
    assert final["best/val/mse"] == best and final["best/step"] == best_step
    assert final["best/val/mse"] == json.loads((tmp_path / "results.json").read_text())["optimized"]["value"]
    assert final["val/mse"] == {"min": best, "last": validations[-1][1]}  # define_metric: lower is better
    assert "test/mse@10shot" in final and "test/mse@10shot_ci95" in final
    assert artifacts(path) == {}, "no artifact unless logger.log_artifacts=true"


def test_the_best_follows_the_metric_direction():
    class Run:
        def define_metric(self, name, summary):
            self.defined = (name, summary)

    tracker = Tracker(Path("unused"), LoggerConfig(mode=WandbMode.disabled), {}, "group")
    tracker.run = Run()
    tracker.define_best("val/accuracy", metric_direction("val/accuracy"))
    assert tracker.run.defined == ("val/accuracy", "max,last")
    tracker.define_best("val/mse", metric_direction("val/mse"))
    assert tracker.run.defined == ("val/mse", "min,last")


def test_a_run_into_a_pipe_captures_its_console_and_logs_its_files_as_an_artifact(tmp_path):
    """The command line with stdout and stderr not a terminal, as under SLURM or `make train > log`."""
    run_dir = tmp_path / "run"
    environment = {**os.environ, "WANDB_DATA_DIR": str(tmp_path / "data"), "WANDB_CACHE_DIR": str(tmp_path / "cache")}
    finished = subprocess.run(
        [sys.executable, "-m", "conml.train", *TINY, *OFFLINE, "logger.log_artifacts=true", f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr
    (path,) = run_files(run_dir)
    captured = console(path)
    assert "wandb-check, seed 0: Meta-training" in captured and "meta-test results" in captured
    assert "mse@10shot" in captured, "the results are printed before the W&B run ends"
    printed = (finished.stdout + finished.stderr).splitlines()
    logged = (run_dir / "train.log").read_text().splitlines()
    assert sorted(logged) == sorted(printed), "train.log holds each printed line once, W&B's capture adds none"
    (name,) = artifacts(path)
    assert name == f"run-{run_record(path).run_id}-files"
    assert artifacts(path)[name] == ("model", ["best.pt", "results.json", "train.log"])
