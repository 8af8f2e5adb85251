"""A table takes only runs of its cells' protocols: a search trial or a run of another sweep that shares a cell's
name is refused, naming its folder and how its settings differ, unless --mix; runs that differ only in what may
vary between runs of a cell (seed, paths, device, logging, evaluation, step budget) are taken."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

import conml.tables.cli as cli
from conml.composer import Composer
from conml.errors import ConfigError
from conml.tables.catalog import TABLES
from conml.tables.provenance import check_protocol
from conml.tables.runs import Run, collect_runs
from conml.tables.table2 import TEST_STEPS, TEST_STEPS_ANALYSIS
from conml.tables.table_sweep import TABLE_CONFIGS, preset_overrides, table_cells
from tests.tables.test_tables_aggregate import write_result

ROOT = Path(__file__).resolve().parents[2]
CONML = "sinusoid-maml-5shot-conml"  # Table 2's ConML-MAML 5-shot cell: lambda = 0.1, inner_lr = 0.01
UPDATE = "sinusoid-maml-5shot-conml_update"  # psi = theta' - theta: Table 2 at lambda = 0.1, its lambda sweep beside


def protocol(name: str, *overrides: str) -> dict:
    """The config of the cell `name` as `python -m conml.train` composes and resolves it."""
    with Composer() as compose:
        return OmegaConf.to_container(compose([*preset_overrides(name), *overrides]), resolve=True, enum_to_str=True)


def changed(config: dict, **settings) -> dict:
    """`config` with dotted settings replaced."""
    config = copy.deepcopy(config)
    for path, value in settings.items():
        *parents, leaf = path.split("__")
        node = config
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config


def result(folder: Path, name: str, config: dict, seed: int = 0, mtime: float | None = None) -> None:
    """A 5-shot run's results.json and its re-test with more inner steps (a table reads both), without checkpoints."""
    steps = config["trainer"]["steps"]
    write_result(folder, name, seed, {"mse@5shot": 0.5}, steps=steps, config=config, mtime=mtime)
    retested = {f"steps={k} mse@5shot": {"mean": 0.4, "ci95": 0.1, "count": 50} for k in TEST_STEPS}
    (folder / "analysis").mkdir()
    (folder / "analysis" / f"{TEST_STEPS_ANALYSIS.name}.json").write_text(json.dumps({"steps": steps, **retested}))


@pytest.fixture
def aggregate(monkeypatch, tmp_path):
    """`scripts/table.py aggregate TABLE FOLDER --seeds 0` (no figures, no W&B, docs/tables untouched)."""
    monkeypatch.setattr(cli, "DOCS_TABLES", tmp_path / "docs" / "tables")

    def _aggregate(table: str, folder: Path, *flags: str) -> int:
        return cli.main(
            ["aggregate", table, str(folder), "--seeds", "0", "--no-figures", "--wandb-mode", "disabled", *flags]
        )

    return _aggregate


def test_an_optuna_trial_in_a_cell_is_refused_naming_its_folder_and_settings_unless_mix(aggregate, tmp_path, capsys):
    """The user's case: a search trial, newer than the cell's run, would have been taken as the cell."""
    cell = protocol(CONML)
    runs = tmp_path / "runs"
    result(runs / "table" / "0_cell", CONML, cell, mtime=1_000)
    trial = changed(cell, conml__lam=0.187, learner__inner_lr=0.0196, optimize_metric="val/mse")
    trial["provenance"] = {"table": None, "cell": None, "sweep": "searches/sine_optuna", "job_type": "search"}
    result(runs / "search" / "3_trial", CONML, trial, mtime=2_000)

    assert aggregate("table2", runs) == 2
    error = capsys.readouterr().err
    assert (
        f"{runs / 'search' / '3_trial'} (cell {CONML}: conml.lam: 0.1 -> 0.187; learner.inner_lr: 0.01 -> 0.0196; "
        "launched as job type search)" in error
    ), error
    assert "1 run(s) of table2's cells" in error and "--mix" in error and str(runs / "table") not in error
    assert len(error.strip().splitlines()) == 1, "one paragraph"
    assert not (runs / "table2.md").exists()

    assert aggregate("table2", runs, "--mix") == 0


def test_a_lambda_sweep_run_is_refused_in_a_lambda_0_1_cell_and_taken_by_the_lambda_table(aggregate, tmp_path, capsys):
    cell = protocol(UPDATE)
    runs = tmp_path / "runs"
    result(runs / "0_lam=1", UPDATE, changed(cell, conml__lam=1.0))

    assert aggregate("table2", runs) == 2
    assert f"{runs / '0_lam=1'} (cell {UPDATE}: conml.lam: 0.1 -> 1.0)" in capsys.readouterr().err
    assert aggregate("table2", runs, "--mix") == 0
    assert aggregate("table2_lambda", runs) == 0, "lambda is what the lambda sweep's cells differ by"


def test_what_may_vary_between_runs_of_a_cell_is_not_refused():
    """Seed (and dataset.seed, which follows it), paths, device, logging, evaluation, step budget (and the scheduler
    length that follows it), provenance; the committed results, written before runs had a provenance, too."""
    cell = protocol(CONML, "seed=3", "device=cpu", "paths.data_dir=/elsewhere", "trainer.steps=70")
    cell = changed(cell, logger__mode="disabled", eval__episodes=600, trainer__val_every=7, resume="auto")
    del cell["provenance"]
    runs = collect_runs([ROOT / "docs" / "results" / "omniglot_cpu"])
    check_protocol(TABLES["omniglot"], runs)
    check_protocol(TABLES["table5"], collect_runs([ROOT / "docs" / "results" / "table5_toy"]))

    check_protocol(TABLES["table2"], [Run(CONML, 3, 70, {}, cell)])


def test_a_tables_launch_overrides_are_part_of_its_protocol_and_smoke_runs_have_the_smoke_protocol():
    shrunk = Run(CONML, 0, 5000, {}, protocol(CONML, "trainer.meta_batch_size=4"))
    with pytest.raises(ConfigError, match="trainer.meta_batch_size: 32 -> 4"):
        check_protocol(TABLES["table2"], [shrunk])
    check_protocol(TABLES["table2"], [shrunk], overrides=["trainer.meta_batch_size=4", "hydra/launcher=basic"])

    table = TABLES["table2"]
    smoke = protocol(CONML, "debug=smoke", "provenance.job_type=smoke", *(f"{k}={v}" for k, v in table.smoke.items()))
    check_protocol(table, [Run(CONML, 0, 2, {}, smoke)])


@pytest.mark.parametrize("path", sorted(TABLE_CONFIGS.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_table_file_names_the_table_its_cells_belong_to(path):
    """A run launched with `+table=<file>` records the table that reads it (table2_ablation's cells are Table 2's)."""
    table = yaml.safe_load(path.read_text())["provenance"]["table"]
    assert table in TABLES and {cell.run_name for cell in table_cells(path.stem)} <= set(TABLES[table].presets)
