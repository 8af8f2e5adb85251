"""Sweeps: a multirun through the submitit launcher gives one W&B run per job in the experiment's group,
and the table aggregates both; the SLURM launcher takes its cluster settings from configs/local/."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conml.tables.cli import main
from tests.conftest import CONFIGS
from tests.wandb_file import run_record

# Table 2's 10-shot MAML cell and the name (W&B group) it runs under.
CELL = ["experiment=sine/plain", "dataset.shots=10"]
NAME = "sinusoid-maml-10shot-plain"
TINY_JOB = [
    "trainer.steps=2",
    "trainer.meta_batch_size=4",
    "trainer.val_every=2",
    "trainer.ckpt_every=2",
    "trainer.val_episodes=4",
    "eval.episodes=4",
    "eval.batch_size=4",
    "device=cpu",
]


def test_two_jobs_through_submitit_local_log_two_wandb_runs_in_one_group_and_fill_the_table(tmp_path):
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        "-m",
        "conml.train",
        "-m",
        "hydra/launcher=local",
        *CELL,
        "seed=0,1",
        *TINY_JOB,
        "logger.mode=offline",
        f"hydra.sweep.dir={sweep}",
    ]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    logs = sorted((sweep / ".submitit").glob("*_0_log.out"))
    assert len(logs) == 2, "each job went through submitit"
    assert not list(sweep.rglob("%j")), "no literal %j folder"
    # The jobs print into their logs; the multirun's closing tables show both jobs' results, then their one setting
    # over the two seeds.
    assert f"Multirun {sweep}: 2 job(s), 2 finished" in finished.stdout and finished.stdout.count("mse@10shot") == 3, (
        finished.stdout[-2000:]
    )

    files = sorted(sweep.glob("*/wandb/offline-run-*/run-*.wandb"))
    records = [run_record(path) for path in files]
    assert len(records) == 2 and len({r.run_id for r in records}) == 2
    assert {r.run_group for r in records} == {NAME}
    assert sorted(r.display_name for r in records) == [f"{NAME}_seed=0", f"{NAME}_seed=1"], "named in the job's process"

    out = tmp_path / "table"
    assert (
        main(
            [
                "aggregate",
                "table2",
                str(sweep),
                "--seeds",
                "0,1",
                "--out",
                str(out),
                "--no-figures",
                "--wandb-mode",
                "disabled",
                "--mix",  # tiny jobs, not the cells' protocol
            ]
        )
        == 0
    )
    entries = {(e["method"], e["metric"]): e for e in json.loads((out / "table2.json").read_text())["entries"]}
    maml = entries[("MAML", "MSE 10-shot ↓")]
    assert maml["ours"]["seeds"] == 2 and all(v is not None for v in maml["ours"]["per_seed"].values())
    assert entries[("ConML-MAML", "MSE 10-shot ↓")]["ours"]["seeds"] == 0
    assert "| ConML-MAML | MSE 10-shot ↓ | 0.0397 ± 0.0009 | missing |  | 0/2 |" in (out / "table2.md").read_text()


def test_slurm_launcher_reads_cluster_settings_from_configs_local(tmp_path):
    local = tmp_path / "search" / "local"
    local.mkdir(parents=True)
    (local / "slurm.yaml").write_text("partition: gpu\naccount: my-lab\ntimeout_min: 600\narray_parallelism: 4\n")
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        with_local = compose(
            "train",
            overrides=["hydra/launcher=slurm", f"hydra.searchpath=[file://{tmp_path / 'search'}]"],
            return_hydra_config=True,
        )
        without = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
        local_processes = compose("train", overrides=["hydra/launcher=local"], return_hydra_config=True)
    launcher = with_local.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.account, launcher.timeout_min, launcher.array_parallelism) == (
        "gpu",
        "my-lab",
        600,
        4,
    )
    assert launcher.gpus_per_node == 1 and launcher.max_num_timeout == 10
    assert without.hydra.launcher.partition is None and without.hydra.launcher.timeout_min == 1440
    assert (
        local_processes.hydra.launcher._target_.endswith("LocalLauncher")
        and local_processes.hydra.launcher.timeout_min == 10080
    )
    assert (
        local_processes.hydra.launcher.gpus_per_node == 1 and "%j" not in local_processes.hydra.launcher.submitit_folder
    )


# The saved grids of configs/hparams_search/: every file there that keeps Hydra's basic sweeper.
GRIDS = sorted(
    path.stem
    for path in (CONFIGS / "hparams_search").glob("*.yaml")
    if "override /hydra/sweeper" not in path.read_text()
)


def test_every_saved_grid_is_found():
    assert GRIDS == ["lambda", "phi", "seeds", "subset_strategy", "subsets"]


@pytest.mark.parametrize("sweep", GRIDS)
def test_saved_grid_sets_valid_values_of_existing_settings(sweep):
    """Each `hparams_search=<grid>` is a multirun whose every value composes on a preset (the schema checks types and choices)."""
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        hydra_config = compose("train", overrides=[*CELL, f"hparams_search={sweep}"], return_hydra_config=True).hydra
        assert str(hydra_config.mode) == "RunMode.MULTIRUN", "a saved sweep runs as a multirun without -m"
        params = hydra_config.sweeper.params
        assert "seed" in params
        for key, values in params.items():
            choices = [values[len("range(") :].split(",")[0]] if values.startswith("range(") else values.split(",")
            for value in choices:
                selected = OmegaConf.select(compose("train", overrides=[*CELL, f"{key}={value}"]), key)
                assert str(getattr(selected, "value", selected)) == value  # enums compare by their config name
