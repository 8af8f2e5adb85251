"""A multirun's jobs are named by the values the sweep varies (folders and W&B runs, the W&B run without
the job number, numbers rounded), a refused job does not stop the others, and the multirun ends with
one table of every job and one of every setting (mean ± 95% CI over seeds), also written, whole and
never over another multirun's, to summary.md and summary.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conml import sweep_summary
from conml.metrics import mean_t_ci
from conml.multirun_jobs import SWEPT_FILE, Job, job_folder, run_name, summary, swept_in, swept_keys
from tests.conftest import CONFIGS, TINY
from tests.train_cli import train_cli
from tests.wandb_file import run_record


def test_jobs_are_named_by_their_swept_values_and_the_multirun_ends_with_one_table(tmp_path):
    sweep = tmp_path / "sweep"
    finished = train_cli("-m", *TINY, "logger.mode=offline", "conml.lam=-1,0.05", "seed=3", f"hydra.sweep.dir={sweep}")

    assert finished.code == 1, "a job failed, so the multirun does"
    assert "conml.lam=-1.0 is out of range" in finished.err
    job = sweep / "1_sinusoid-maml-conml_on_conml.lam=0.05"
    assert sorted(p.name for p in sweep.iterdir()) == [
        job.name,
        "multirun.yaml",
        "summary.json",
        "summary.md",
        SWEPT_FILE,
    ], "the refused job left no folder, and the summary no temporary file"
    assert (job / "results.json").exists()
    (wandb_file,) = job.glob("wandb/offline-run-*/run-*.wandb")
    assert run_record(wandb_file).display_name == "sinusoid-maml-conml_on_conml.lam=0.05,seed=3", "no job number"

    table = finished.out[
        finished.out.index(f"Multirun {sweep}: 2 job(s), 1 finished, 1 failed or refused.") :
    ].splitlines()
    assert table[1].split() == ["job", "conml.lam", "test", "(mean", "±", "95%", "CI)", "run", "folder"]
    assert table[2].split()[:4] == ["0", "-1", "failed:", "conml.lam=-1.0"] and table[2].endswith("-")
    assert table[3].split()[:3] == ["1", "0.05", "mse@10shot"] and "±" in table[3] and table[3].endswith(str(job))

    assert f"Summary written to {sweep / 'summary.md'} and {sweep / 'summary.json'}." in finished.out
    written = json.loads((sweep / "summary.json").read_text())
    test = json.loads((job / "results.json").read_text())["test"]
    assert written["swept"] == ["conml.lam"] and [s["values"] for s in written["settings"]] == [
        {"conml.lam": "-1"},
        {"conml.lam": "0.05"},
    ]
    refused, finished_setting = written["settings"]
    assert refused["jobs"] == 1 and refused["test"] == {} and written["jobs"][0]["error"]
    assert finished_setting["test"]["mse@10shot"] == {"mean": test["mse@10shot"]["mean"], "ci95": None, "seeds": 1}
    markdown = (sweep / "summary.md").read_text()
    assert "| -1 | 0/1 | - |" in markdown and f"| 1 | 0.05 | mse@10shot {test['mse@10shot']['mean']:.4g} ± " in markdown
    assert str(sweep.parent) not in markdown, "run folders relative to the sweep folder"


def test_saved_sweeps_name_their_swept_settings(tmp_path):
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        params = compose(
            "train",
            overrides=["experiment=sine/conml", "dataset.shots=10", "hparams_search=lambda"],
            return_hydra_config=True,
        ).hydra.sweeper.params
    # What the multirun's own process sees: the saved sweep's params, and the command line's overrides.
    command_line = [
        "experiment=sine/conml",
        "dataset.shots=10",
        "hparams_search=lambda",
        "trainer.steps=2",
        "conml.subset=support,random",
    ]
    multirun = OmegaConf.create({"hydra": {"sweeper": {"params": params}, "overrides": {"task": command_line}}})
    assert swept_keys(multirun) == ["conml.lam", "seed", "conml.subset"]
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / SWEPT_FILE).write_text('["experiment", "conml.lam", "seed"]')
    overrides = [
        "experiment=sine/conml",
        "dataset.shots=10",
        "trainer.steps=2",
        "conml.lam=0.3",
        "seed=1",
        "paths.output_dir=/a/b",
    ]
    assert (
        job_folder(4, "sinusoid-maml-10shot-conml", overrides, str(sweep))
        == "4_sinusoid-maml-10shot-conml_conml.lam=0.3,seed=1"
    )
    (sweep / SWEPT_FILE).write_text('["paths.output_dir"]')
    assert job_folder(0, "x", overrides, str(sweep)) == "0_x_paths.output_dir=-a-b", "a value never adds folder levels"


@pytest.mark.parametrize("swept", [None, "[]", '["seed"]'])
def test_a_job_without_swept_values_is_named_by_number_and_experiment(tmp_path, swept):
    if swept is not None:
        (tmp_path / SWEPT_FILE).write_text(swept)
    assert job_folder(2, "name", ["trainer.steps=2"], str(tmp_path)) == "2_name"


def test_wandb_names_have_no_job_number_and_rounded_numbers(tmp_path):
    swept = ["conml.lam", "learner.inner_lr", "seed"]
    (tmp_path / SWEPT_FILE).write_text(json.dumps(swept))
    assert swept_in(tmp_path) == swept
    trial = ["experiment=sine/conml", "conml.lam=0.012345678901234567", "learner.inner_lr=0.0034567890123456789"]
    name = "sinusoid-maml-5shot-conml"
    assert run_name(name, 0, trial, swept) == f"{name}_conml.lam=0.01235,learner.inner_lr=0.003457,seed=0", (
        "the seed too"
    )
    assert job_folder(7, name, trial, str(tmp_path)) == f"7_{name}_conml.lam=0.01235,learner.inner_lr=0.003457"
    exact = ["conml.lam=1.0", "learner.inner_lr=1e-05", "seed=123456789"]
    assert run_name(name, 0, exact, swept) == f"{name}_conml.lam=1.0,learner.inner_lr=1e-05,seed=123456789", "kept as"
    assert run_name(name, 3, exact) == f"{name}_seed=3", "nothing swept: its cell and seed"
    assert run_name(name, 3) == f"{name}_seed=3", "a single run: its cell and seed"


def jobs_of_a_sweep(folder: Path) -> list[Job]:
    """conml.lam 0.1 with seeds 0, 1, 2; conml.lam 1.0 with seed 0 finished and seed 1 failed."""
    finished = [("0.1", "0", 1.0), ("0.1", "1", 2.0), ("0.1", "2", 4.0), ("1.0", "0", 3.0), ("1.0", "1", None)]
    return [
        Job(
            number,
            {"conml.lam": lam, "seed": seed},
            folder / f"{number}_sine_conml.lam={lam},seed={seed}",
            None if mse is None else {"mse@10shot": {"mean": mse, "ci95": 0.1, "count": 100}},
            "diverged" if mse is None else None,
        )
        for number, (lam, seed, mse) in enumerate(finished)
    ]


def test_each_setting_is_summarised_over_its_seeds(tmp_path):
    jobs = jobs_of_a_sweep(tmp_path)
    lam_01, lam_1 = sweep_summary.settings(jobs, ["conml.lam", "seed"])
    expected = mean_t_ci([1.0, 2.0, 4.0])
    assert lam_01.test() == {"mse@10shot": {"mean": expected.mean, "ci95": expected.ci95, "seeds": 3}}
    assert lam_1.test() == {"mse@10shot": {"mean": 3.0, "ci95": None, "seeds": 1}}, "one seed has no interval"

    lines = summary(jobs, ["conml.lam", "seed"], tmp_path).splitlines()
    per_setting = lines[lines.index("Per setting, mean ± 95% CI over seeds:") + 1 :]
    assert per_setting[0].split() == ["conml.lam", "seeds", "finished", "mse@10shot", "(mean", "±", "95%", "CI)"]
    assert per_setting[1].split() == ["0.1", "3/3", f"{expected.mean:.4g}", "±", f"{expected.ci95:.2g}"]
    assert per_setting[2].split() == ["1.0", "1/2", "3"]


def test_a_summary_never_replaces_another_multiruns_and_is_written_whole(tmp_path):
    (tmp_path / "summary.md").write_text("another multirun's summary\n")
    jobs = jobs_of_a_sweep(tmp_path)
    first = sweep_summary.write(tmp_path, jobs, ["conml.lam", "seed"], tmp_path)
    assert first == (tmp_path / "summary-2.md", tmp_path / "summary-2.json"), "a pair is kept together"
    assert (tmp_path / "summary.md").read_text() == "another multirun's summary\n"
    assert sweep_summary.write(tmp_path, jobs, ["conml.lam", "seed"], tmp_path) == first, "the same again: unchanged"
    third = sweep_summary.write(tmp_path, jobs[:3], ["conml.lam", "seed"], tmp_path)
    assert third == (tmp_path / "summary-3.md", tmp_path / "summary-3.json")
    assert sorted(os.listdir(tmp_path)) == [
        "summary-2.json",
        "summary-2.md",
        "summary-3.json",
        "summary-3.md",
        "summary.md",
    ], "no temporary file is left"
    assert json.loads(third[1].read_text())["settings"][0]["seeds_finished"] == ["0", "1", "2"]


def test_a_name_taken_while_writing_moves_the_summary_on(tmp_path, monkeypatch):
    """Another multirun ending in the same folder at the same moment takes summary.json between the check and the
    link: this summary's summary.md is taken back and the pair goes to summary-2.*."""
    real_link = os.link

    def raced(source, target):
        if Path(target).name == "summary.json":
            Path(target).write_text("the other multirun's\n")
        real_link(source, target)

    monkeypatch.setattr(os, "link", raced)
    written = sweep_summary.write(tmp_path, jobs_of_a_sweep(tmp_path), ["conml.lam", "seed"], tmp_path)
    assert written == (tmp_path / "summary-2.md", tmp_path / "summary-2.json")
    assert sorted(os.listdir(tmp_path)) == ["summary-2.json", "summary-2.md", "summary.json"]
