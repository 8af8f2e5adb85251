"""`scripts/table.py aggregate` never mixes smoke runs with real ones or step budgets within a cell
unless told, writes to docs/tables only when asked, and says which runs it used."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

import conml.tables.cli as cli
from conml.tables.catalog import TABLES
from tests.tables.test_tables_aggregate import TOY, write_result

ROOT = Path(__file__).resolve().parents[2]
# A smoke run's config: the settings of configs/debug/smoke.yaml, logging aside.
SMOKE_CONFIG = {
    key: value
    for key, value in yaml.safe_load((ROOT / "configs" / "debug" / "smoke.yaml").read_text()).items()
    if key != "logger"
}


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def real(steps: int = 100) -> dict:
    return {"trainer": {"steps": steps, "meta_batch_size": 4}, "eval": {"episodes": 600, "batch_size": 100}}


@pytest.fixture
def toy_table(monkeypatch, tmp_path):
    monkeypatch.setitem(TABLES, "toy", TOY)
    monkeypatch.setattr(cli, "DOCS_TABLES", tmp_path / "docs" / "tables")
    return tmp_path


def test_the_readme_command_refuses_smoke_runs_beside_real_ones_and_leaves_the_docs_alone(tmp_path, capsys):
    """`python scripts/table.py aggregate table2 outputs/` over a smoke sweep and a real one."""
    outputs = tmp_path / "outputs"
    write_result(
        outputs / "tables" / "table2-smoke" / "1" / "0_a",
        "sinusoid-maml-5shot-plain",
        0,
        {"mse@5shot": 3.0},
        config=SMOKE_CONFIG,
    )
    write_result(
        outputs / "tables" / "table2" / "1" / "0_a",
        "sinusoid-maml-5shot-conml",
        0,
        {"mse@5shot": 0.4},
        config=real(70000),
    )
    docs = ROOT / "docs" / "tables"
    before, outputs_before = checksums(docs), checksums(outputs)

    assert cli.main(["aggregate", "table2", str(outputs)]) == 2
    error = capsys.readouterr().err
    assert "mix 1 smoke run(s)" in error and "1 real one(s)" in error and "--mix" in error, error
    assert checksums(docs) == before and checksums(outputs) == outputs_before, "a refused aggregation writes nothing"


def test_runs_of_one_preset_at_different_step_budgets_are_refused_unless_mix(toy_table, capsys):
    runs = toy_table / "runs"
    write_result(runs / "a", "base_1", 0, {"accuracy@1shot": 40.0}, config=real(100))
    write_result(runs / "b", "base_1", 1, {"accuracy@1shot": 42.0}, config=real(200))
    arguments = ["aggregate", "toy", str(runs), "--seeds", "0,1", "--no-figures", "--wandb-mode", "disabled"]

    assert cli.main(arguments) == 2
    assert "runs of base_1 were trained for different numbers of steps (100 steps:" in capsys.readouterr().err
    assert not (runs / "toy.md").exists()
    assert cli.main([*arguments, "--mix"]) == 0
    assert (runs / "toy.md").exists()


def test_aggregate_writes_beside_the_runs_says_what_it_used_and_writes_the_docs_only_with_docs(toy_table, capsys):
    runs = toy_table / "sweep"
    for seed in (0, 1):
        write_result(runs / f"{seed}_base_1", "base_1", seed, {"accuracy@1shot": 40.0 + seed}, config=real())
    arguments = ["aggregate", "toy", str(runs), "--seeds", "0,1", "--no-figures", "--wandb-mode", "disabled"]

    assert cli.main(arguments) == 0
    printed = capsys.readouterr().out
    assert (
        "Aggregated 2 run(s) of 1 preset(s):" in printed and f"  base_1: seeds 0, 1; 100 steps; from {runs}" in printed
    )
    assert (runs / "toy.md").exists() and not cli.DOCS_TABLES.exists()

    assert cli.main([*arguments, "--docs"]) == 0
    assert (cli.DOCS_TABLES / "toy.md").exists()
    with pytest.raises(SystemExit):
        cli.main([*arguments, "--docs", "--out", str(toy_table / "elsewhere")])


def test_runs_on_synthetic_data_are_refused_unless_mix(toy_table, capsys):
    runs = toy_table / "runs"
    synthetic = {**real(), "dataset": {"synthetic": True}}
    write_result(runs / "a", "base_1", 0, {"accuracy@1shot": 40.0}, config=synthetic)
    arguments = ["aggregate", "toy", str(runs), "--seeds", "0", "--no-figures", "--wandb-mode", "disabled"]

    assert cli.main(arguments) == 2
    assert "1 of the runs found used dataset.synthetic=true" in capsys.readouterr().err
    assert not (runs / "toy.md").exists()
    assert cli.main([*arguments, "--mix"]) == 0
    assert "seeds 0; 100 steps (synthetic data)" in capsys.readouterr().out
