"""The committed tables in docs/tables/ are results: `scripts/table.py` never writes an empty table, smoke or
synthetic runs over them, nor loses or changes a committed number unless --force; aggregating no run is an error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import conml.tables.cli as cli
from conml.tables.catalog import TABLES
from tests.tables.test_tables_aggregate import TOY, write_result
from tests.tables.test_tables_provenance import SMOKE_CONFIG, checksums, real

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--no-figures", "--wandb-mode", "disabled"]


@pytest.fixture
def docs(monkeypatch, tmp_path) -> Path:
    """A copy of the committed docs/tables/ standing in for it, and the toy table in the catalog."""
    copy = tmp_path / "docs" / "tables"
    shutil.copytree(ROOT / "docs" / "tables", copy)
    monkeypatch.setattr(cli, "DOCS_TABLES", copy)
    monkeypatch.setitem(TABLES, "toy", TOY)
    return copy


def toy_runs(folder: Path, seeds=(0, 1), config=None) -> Path:
    for seed in seeds:
        for name, key, value in (("base_1", "accuracy@1shot", 40.0), ("base_5", "accuracy@5shot", 60.0)):
            write_result(folder / f"{name}_{seed}", name, seed, {key: value + seed}, config=config or real())
    return folder


def refused(arguments: list[str], capsys, *watched: Path) -> str:
    """Run the command, check that it is refused with one error paragraph and changes nothing; return the paragraph."""
    before = [checksums(folder) for folder in watched]
    assert cli.main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "\n" not in error, error
    assert [checksums(folder) for folder in watched] == before, "a refused command writes nothing"
    return error


@pytest.mark.parametrize("where", [[], ["--docs"], ["--out", "elsewhere"]])
def test_aggregating_no_runs_is_an_error_naming_the_folder(docs, tmp_path, capsys, where):
    empty = tmp_path / "empty"
    empty.mkdir()
    where = [str(tmp_path / w) if w == "elsewhere" else w for w in where]
    error = refused(["aggregate", "table2", str(empty), *where, *ARGS], capsys, docs, tmp_path)
    assert f"no finished run of table2 with seeds [0, 1, 2, 3, 4] in {empty}" in error, error


def test_run_smoke_with_docs_is_refused_before_anything_runs(docs, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "multirun", lambda *a, **k: pytest.fail("the multirun started"))
    error = refused(["run", "table2_lambda", "--smoke", "--seeds", "0", "--docs"], capsys, docs)
    assert "--smoke with --docs" in error and "table2_lambda" in error


@pytest.mark.parametrize("kind", ["smoke", "synthetic"])
def test_smoke_or_synthetic_runs_never_go_to_the_docs_even_with_mix_or_force(docs, tmp_path, capsys, kind):
    config = SMOKE_CONFIG if kind == "smoke" else {**real(), "dataset": {"synthetic": True}}
    runs = toy_runs(tmp_path / "sweep", config=config)
    arguments = ["aggregate", "toy", str(runs), "--seeds", "0,1", "--docs", "--mix", "--force", *ARGS]
    error = refused(arguments, capsys, docs, runs)
    assert f"are {kind}" in error and "--out DIR" in error, error


def test_a_table_without_one_filled_cell_never_goes_to_the_docs(docs, tmp_path, capsys):
    runs = tmp_path / "sweep"
    write_result(runs / "a", "base_1", 0, {"accuracy@5shot": 1.0}, config=real())  # not the metric the cell reads
    error = refused(["aggregate", "toy", str(runs), "--seeds", "0", "--docs", "--force", *ARGS], capsys, docs, runs)
    assert "Not one cell of toy has a number" in error, error


def test_committed_numbers_are_filled_in_but_never_lost_or_changed_unless_force(docs, tmp_path, capsys):
    both = toy_runs(tmp_path / "both")
    first = toy_runs(tmp_path / "first", seeds=(0,))
    base_1_only = tmp_path / "base_1_only"
    write_result(base_1_only / "a", "base_1", 0, {"accuracy@1shot": 40.0}, config=real())
    write_result(base_1_only / "b", "base_1", 1, {"accuracy@1shot": 41.0}, config=real())
    arguments = ["--seeds", "0,1", "--docs", *ARGS]

    assert cli.main(["aggregate", "toy", str(base_1_only), *arguments]) == 0  # a new committed table
    assert cli.main(["aggregate", "toy", str(both), *arguments]) == 0  # base_5 filled in: the table grows
    committed = json.loads((docs / "toy.json").read_text())
    assert [e["ours"]["mean"] for e in committed["entries"][:3]] == [40.5, None, 60.5]
    assert cli.main(["aggregate", "toy", str(both), *arguments]) == 0  # the same runs again: nothing changes
    capsys.readouterr()

    error = refused(["aggregate", "toy", str(first), *arguments], capsys, docs)  # seed 1 gone: numbers change
    assert "would change 2 number(s)" in error and "Base / acc: 40.5 → 40;" in error and "60.5 → 60" in error, error
    error = refused(["aggregate", "toy", str(base_1_only), *arguments], capsys, docs)  # base_5 gone: a cell lost
    assert "Base / acc: 60.5 → missing" in error and "--force" in error, error

    assert cli.main(["aggregate", "toy", str(first), *arguments, "--force"]) == 0
    assert json.loads((docs / "toy.json").read_text())["entries"][0]["ours"]["mean"] == 40.0


def test_force_needs_docs(docs, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["aggregate", "toy", str(toy_runs(tmp_path / "sweep")), "--force", *ARGS])


@pytest.mark.parametrize(
    ("table", "results"), [("table5", "docs/results/table5_toy"), ("omniglot", "docs/results/omniglot_cpu")]
)
def test_make_table_rebuilds_the_partial_committed_tables_from_their_committed_runs(docs, table, results, capsys):
    """`make table-5` / `make table-omniglot`: the same numbers again, their missing cells left missing."""
    committed = json.loads((docs / f"{table}.json").read_text())
    assert any(e["ours"]["mean"] is None for e in committed["entries"]), "the committed table is partial"
    assert cli.main(["aggregate", table, str(ROOT / results), "--docs", *ARGS]) == 0, capsys.readouterr().err
    rebuilt = json.loads((docs / f"{table}.json").read_text())
    assert json.dumps([e["ours"] for e in rebuilt["entries"]]) == json.dumps([e["ours"] for e in committed["entries"]])
