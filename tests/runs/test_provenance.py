"""Every run knows what made it: its table and cell (or none), its multirun, and its job type (train, search,
table, smoke), in its results.json and W&B config, with the W&B run's job type and tags to match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conml.errors import ConfigError
from conml.train import run
from tests.conftest import TINY, compose_config
from tests.train_cli import train_cli
from tests.wandb_file import config, run_record

OFFLINE = ["logger.mode=offline"]


def finished(folder: Path) -> tuple[dict, dict, object]:
    """(results.json's config.provenance, the W&B config's provenance, the W&B run record) of the run in `folder`."""
    results = json.loads((folder / "results.json").read_text())
    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    return results["config"]["provenance"], config(path)["provenance"], run_record(path)


def only_job(sweep: Path) -> Path:
    (results,) = sweep.rglob("results.json")
    return results.parent


def test_a_single_run_is_a_train_job_of_no_table_and_no_sweep(tmp_path):
    run(compose_config([*TINY, *OFFLINE, "logger.tags=[unit]"]), tmp_path)
    results, logged, record = finished(tmp_path)
    assert results == logged == {"table": None, "cell": None, "sweep": None, "job_type": "train"}
    assert record.job_type == "train" and list(record.tags) == ["unit"]


def test_a_run_launched_by_a_table_knows_its_table_cell_and_sweep(tmp_path):
    """`python -m conml.train -m +table=table2_lambda`, one cell: what `make table-2` launches."""
    sweep = tmp_path / "outputs" / "tables" / "table2_lambda" / "2025-01-01_00-00-00"
    launched = train_cli(
        "-m",
        "+table=table2_lambda",
        "conml.lam=1",
        "seed=0",
        *TINY,
        *OFFLINE,
        f"paths.output_dir={tmp_path / 'outputs'}",
        f"hydra.sweep.dir={sweep}",
    )
    assert launched.code == 0, launched.out[-2000:] + launched.err[-2000:]
    results, logged, record = finished(only_job(sweep))
    assert (
        results
        == logged
        == {
            "table": "table2_lambda",
            "cell": "sinusoid-maml-5shot-conml_update conml.lam=1",
            "sweep": "tables/table2_lambda/2025-01-01_00-00-00",
            "job_type": "table",
        }
    )
    assert record.job_type == "table" and "table2_lambda" in record.tags
    assert record.run_group == "sinusoid-maml-5shot-conml_update", "the group stays the cell's name"


def test_an_optuna_trial_is_a_search_job_of_no_table(tmp_path):
    outputs = tmp_path / "outputs"
    searched = train_cli(
        "-m",
        "hparams_search=sine_optuna",
        "experiment=sine/conml",
        "dataset.shots=5",
        "hydra.sweeper.n_trials=1",
        *TINY,
        *OFFLINE,
        f"paths.output_dir={outputs}",
    )
    assert searched.code == 0, searched.out[-2000:] + searched.err[-2000:]
    results, logged, record = finished(only_job(outputs))
    assert results == logged
    assert results["job_type"] == "search" and results["table"] is None and results["cell"] is None
    assert results["sweep"] and not Path(results["sweep"]).is_absolute(), "the multirun, relative to the outputs"
    assert record.job_type == "search"


def test_a_smoke_run_is_a_smoke_job_even_in_a_table(tmp_path):
    cfg = compose_config(["debug=smoke", "device=cpu", "provenance.table=table2", "experiment=sine/plain"])
    run(cfg, tmp_path)
    provenance = json.loads((tmp_path / "results.json").read_text())["config"]["provenance"]
    assert provenance == {"table": "table2", "cell": "sinusoid-maml-10shot-plain", "sweep": None, "job_type": "smoke"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["provenance.table=table9"], "provenance.table=table9 is not a paper table; the tables are: table2, "),
        (["provenance.table=table2", "dataset.shots=7"], "but this run (sinusoid-maml-7shot-conml) is none of"),
    ],
)
def test_a_table_the_run_is_no_cell_of_is_refused_at_start_up(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(compose_config([*TINY, "experiment=sine/conml", *overrides]), tmp_path)
    assert not (tmp_path / "results.json").exists()
