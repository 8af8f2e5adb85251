"""A multirun's jobs are named by the values the sweep varies (folders and W&B runs, the W&B run without
the job number, numbers rounded), a refused job does not stop the others, and the multirun ends with
one table of every job."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conml.multirun_jobs import SWEPT, job_folder, run_name, swept_keys
from tests.conftest import CONFIGS, TINY
from tests.train_cli import train_cli
from tests.wandb_file import run_record


def test_jobs_are_named_by_their_swept_values_and_the_multirun_ends_with_one_table(tmp_path):
    sweep = tmp_path / "sweep"
    finished = train_cli("-m", *TINY, "logger.mode=offline", "conml.lam=-1,0.05", "seed=3", f"hydra.sweep.dir={sweep}")

    assert finished.code == 1, "a job failed, so the multirun does"
    assert "conml.lam=-1.0 is out of range" in finished.err
    job = sweep / "1_sinusoid-maml-conml_on_conml.lam=0.05"
    assert sorted(p.name for p in sweep.iterdir()) == [job.name, "multirun.yaml"], "the refused job left no folder"
    assert (job / "results.json").exists()
    (wandb_file,) = job.glob("wandb/offline-run-*/run-*.wandb")
    assert run_record(wandb_file).display_name == "sinusoid-maml-conml_on_conml.lam=0.05,seed=3", "no job number"

    table = finished.out[
        finished.out.index(f"Multirun {sweep}: 2 job(s), 1 finished, 1 failed or refused.") :
    ].splitlines()
    assert table[1].split() == ["job", "conml.lam", "test", "(mean", "±", "95%", "CI)", "run", "folder"]
    assert table[2].split()[:4] == ["0", "-1", "failed:", "conml.lam=-1.0"] and table[2].endswith("-")
    assert table[3].split()[:3] == ["1", "0.05", "mse@10shot"] and "±" in table[3] and table[3].endswith(str(job))


def test_saved_sweeps_name_their_swept_settings(monkeypatch):
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        params = compose(
            "train",
            overrides=["experiment=sine/conml", "dataset.shots=10", "+sweep=lambda"],
            return_hydra_config=True,
        ).hydra.sweeper.params
    # What the multirun's own process sees: the saved sweep's params, and the command line's overrides.
    command_line = [
        "experiment=sine/conml",
        "dataset.shots=10",
        "+sweep=lambda",
        "trainer.steps=2",
        "conml.subset=support,random",
    ]
    multirun = OmegaConf.create({"hydra": {"sweeper": {"params": params}, "overrides": {"task": command_line}}})
    assert swept_keys(multirun) == ["conml.lam", "seed", "conml.subset"]
    monkeypatch.setenv(SWEPT, "experiment,conml.lam,seed")
    overrides = [
        "experiment=sine/conml",
        "dataset.shots=10",
        "trainer.steps=2",
        "conml.lam=0.3",
        "seed=1",
        "paths.output_dir=/a/b",
    ]
    assert job_folder(4, "sinusoid-maml-10shot-conml", overrides) == "4_sinusoid-maml-10shot-conml_conml.lam=0.3,seed=1"
    monkeypatch.setenv(SWEPT, "paths.output_dir")
    assert job_folder(0, "x", overrides) == "0_x_paths.output_dir=-a-b", "a value never adds folder levels"


@pytest.mark.parametrize("swept", ["", "seed"])
def test_a_job_without_swept_values_is_named_by_number_and_experiment(monkeypatch, swept):
    monkeypatch.setenv(SWEPT, swept)
    assert job_folder(2, "name", ["trainer.steps=2"]) == "2_name"


def test_wandb_names_have_no_job_number_and_rounded_numbers(monkeypatch):
    monkeypatch.setenv(SWEPT, "conml.lam,learner.inner_lr,seed")
    trial = ["experiment=sine/conml", "conml.lam=0.012345678901234567", "learner.inner_lr=0.0034567890123456789"]
    name = "sinusoid-maml-5shot-conml"
    assert run_name(name, 0, trial) == f"{name}_conml.lam=0.01235,learner.inner_lr=0.003457,seed=0", "the seed too"
    assert job_folder(7, name, trial) == f"7_{name}_conml.lam=0.01235,learner.inner_lr=0.003457"
    exact = ["conml.lam=1.0", "learner.inner_lr=1e-05", "seed=123456789"]
    assert run_name(name, 0, exact) == f"{name}_conml.lam=1.0,learner.inner_lr=1e-05,seed=123456789", "kept as given"
    monkeypatch.delenv(SWEPT)
    assert run_name(name, 3) == f"{name}_seed=3", "a single run: its cell and seed"
