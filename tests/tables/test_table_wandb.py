"""`scripts/table.py aggregate` logs the table to W&B as a wandb.Table with its figures, in one run of job type
'table' whose config names the table, beside the table's training runs (their project, group and tags), with
its W&B files in the output folder and never in a run folder. Read back from the offline run file."""

from __future__ import annotations

import json
import time

import pytest

from conml.tables import render
from conml.tables.aggregate import aggregate
from conml.tables.catalog import TABLES
from conml.tables.cli import main
from conml.tables.runs import collect_runs
from conml.tables.wandb_table import log_table, placement
from tests.tables.test_tables_aggregate import TOY, write_result
from tests.wandb_file import config, history, read_records, run_record


def logger(group: str | None, tags: list[str]) -> dict:
    """A results.json config with the logger settings a training run had."""
    return {"trainer": {"meta_batch_size": 4}, "logger": {"project": "conml-test", "group": group, "tags": tags}}


@pytest.fixture
def tagged_runs(tmp_path):
    """Seeds 0 and 1 of the toy table's four runs, each in its own run folder with its cell's tags (no group set:
    a run's W&B group is then its name)."""
    runs = tmp_path / "sweep"
    for seed in (0, 1):
        for name, metric, value, tags in (
            ("base_1", "accuracy@1shot", 40.0, ["toyset", "1shot", "plain"]),
            ("base_5", "accuracy@5shot", 60.0, ["toyset", "5shot", "plain"]),
            ("conml_1", "accuracy@1shot", 50.0, ["toyset", "1shot", "conml"]),
            ("conml_5", "accuracy@5shot", 65.0, ["toyset", "5shot", "conml"]),
        ):
            write_result(runs / f"{name}_{seed}", name, seed, {metric: value + seed}, config=logger(None, tags))
    return runs


def offline_files(folder):
    return sorted(folder.rglob("offline-run-*/run-*.wandb"))


def written(path, wait_s: float = 60.0):
    """`path` once W&B's service has written it to the end (its exit record): `run.finish()` may return before."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if any(record.WhichOneof("record_type") == "exit" for record in read_records(path)):
                return path
        except AssertionError:  # a record half written
            pass
        time.sleep(0.2)
    raise AssertionError(f"{path} was not written to the end within {wait_s} s")


def table_rows(path) -> list[dict]:
    """The history rows that hold the table (a logged value's fields flattened: `table/_type`, `table/path`)."""
    return [row for row in history(path) if "table/_type" in row]


@pytest.mark.parametrize("out", [True, False], ids=["--out", "default: the first RUNS_DIR"])
def test_the_table_is_a_wandb_table_in_a_table_run_beside_its_training_runs(tagged_runs, tmp_path, monkeypatch, out):
    monkeypatch.setitem(TABLES, "toy", TOY)
    out_dir = tmp_path / "out" if out else tagged_runs
    arguments = ["aggregate", "toy", str(tagged_runs), "--seeds", "0,1", "--no-figures", "--wandb-mode", "offline"]
    assert main(arguments + (["--out", str(out_dir)] if out else [])) == 0

    (path,) = map(written, offline_files(tmp_path))
    assert path.is_relative_to(out_dir / "wandb"), "the W&B files go into the output folder"
    assert not any((run / "wandb").exists() for run in tagged_runs.iterdir()), "never into a run folder"
    record = run_record(path)
    assert (record.project, record.job_type, record.display_name) == ("conml-test", "table", "toy-table")
    assert record.run_group == "toy", "runs of several groups: a group of the table's own"
    assert list(record.tags) == ["toy", "1shot", "5shot", "conml", "plain", "toyset"], "every tag of its runs"
    assert {k: v for k, v in config(path).items() if k != "_wandb"} == {"table": "toy", "job_type": "table"}

    (row,) = table_rows(path)
    assert row["table/_type"] == "table-file"
    logged = json.loads((path.parent / "files" / row["table/path"]).read_text())
    assert logged["columns"] == list(render.HEADER)
    markdown_rows = [line for line in (out_dir / "toy.md").read_text().splitlines() if line.startswith("| Base")]
    assert ["| " + " | ".join(cells) + " |" for cells in logged["data"] if cells[0] == "Base"] == markdown_rows
    assert ["Base", "acc", "40.00 ± 1.00", "40.50 ± 6.35", "+0.50", "2/2"] in logged["data"]


def test_a_table_of_one_group_joins_that_group(tmp_path):
    for seed in (0, 1):
        for name in ("base_1", "conml_1"):
            config = logger("my-sweep", ["toyset", name])
            write_result(tmp_path / f"{name}_{seed}", name, seed, {"accuracy@1shot": 40.0}, config=config)
    where = placement(aggregate(TOY, collect_runs([tmp_path]), seeds=(0, 1)))
    assert where == {
        "project": "conml-test",
        "entity": None,
        "group": "my-sweep",
        "tags": ["toy", "base_1", "conml_1", "toyset"],
    }


def test_a_run_folder_as_output_keeps_the_table_run_beside_it(tmp_path, monkeypatch):
    monkeypatch.setitem(TABLES, "toy", TOY)
    run = tmp_path / "sweep" / "base_1_0"
    write_result(run, "base_1", 0, {"accuracy@1shot": 40.0}, config=logger(None, ["toyset"]))
    assert main(["aggregate", "toy", str(run), "--seeds", "0", "--no-figures", "--wandb-mode", "offline"]) == 0
    (path,) = map(written, offline_files(tmp_path))
    assert path.is_relative_to(tmp_path / "sweep" / "wandb") and not (run / "wandb").exists()


def test_the_figures_are_logged_with_the_table(tagged_runs, tmp_path):
    from matplotlib.figure import Figure

    figure_path = tmp_path / "toy_curves.png"
    Figure(figsize=(1, 1)).savefig(figure_path)
    result = aggregate(TOY, collect_runs([tagged_runs]), seeds=(0, 1))
    folder = log_table(result, [figure_path], "offline", tmp_path / "out")
    (path,) = map(written, folder.glob("run-*.wandb"))
    (row,) = table_rows(path)
    assert row["toy_curves/_type"] == "image-file" and (folder / "files" / row["toy_curves/path"]).is_file()
    assert log_table(result, [figure_path], "disabled", tmp_path / "none") is None and not (tmp_path / "none").exists()
