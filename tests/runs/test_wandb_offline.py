"""The offline W&B run file holds what we log; a resumed run continues the same W&B run."""

from __future__ import annotations

from conml.train import run
from tests.conftest import TINY, compose_config
from tests.wandb_file import config, history, read_records, run_record

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
