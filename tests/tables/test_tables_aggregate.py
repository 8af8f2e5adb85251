"""Table aggregation from results.json files: numbers over seeds, missing runs, relative gain/time, output files."""

from __future__ import annotations

import json
import math
import os
from types import SimpleNamespace

import pytest

from conml.tables import render
from conml.tables.aggregate import aggregate
from conml.tables.catalog import TABLES
from conml.tables.cli import main
from conml.tables.measures import MetaTestMetric, RelativeGain, RelativeTime
from conml.tables.multirun import sweep_parameters
from conml.tables.runs import collect_runs, wandb_runs
from conml.tables.spec import Cell, Column, Paper, RunKey, Table
from conml.tables.table_sweep import every_sweep_cell
from tests.conftest import CONFIGS


def write_result(folder, name, seed, test, steps=100, train_seconds=10.0, config=None, mtime=None):
    """A results.json as `python -m conml.train` writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    test = {key: {"mean": value, "ci95": 0.1, "count": 50} for key, value in test.items()}
    payload = {
        "name": name,
        "seed": seed,
        "steps": steps,
        "train_seconds": train_seconds,
        "peak_memory_mb": None,
        "test": test,
        "config": config or {"trainer": {"meta_batch_size": 4}},
    }
    path = folder / "results.json"
    path.write_text(json.dumps(payload))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


ACC = Column("acc", digits=2)
BASE1, BASE5 = (
    MetaTestMetric(RunKey("base_1"), ("accuracy@1shot",)),
    MetaTestMetric(RunKey("base_5"), ("accuracy@5shot",)),
)
CONML1, CONML5 = (
    MetaTestMetric(RunKey("conml_1"), ("accuracy@1shot",)),
    MetaTestMetric(RunKey("conml_5"), ("accuracy@5shot",)),
)
TOY = Table(
    name="toy",
    title="Toy table",
    source="by hand",
    cells=(
        Cell("Base", ACC, BASE1, Paper(40.0, 1.0)),
        Cell("ConML", ACC, CONML1, Paper(50.0, 1.0)),
        Cell("Base", ACC, BASE5),
        Cell("ConML", ACC, CONML5),
        Cell("ConML", Column("gain", digits=2, unit="%"), RelativeGain((BASE1, BASE5), (CONML1, CONML5)), Paper(10.0)),
        Cell(
            "ConML",
            Column("time", digits=2, unit="×"),
            RelativeTime((BASE1.run, BASE5.run), (CONML1.run, CONML5.run)),
            Paper(1.2),
        ),
    ),
)


@pytest.fixture
def toy_runs(tmp_path):
    """Seeds 0..2 of the base runs; seeds 0, 1 of the ConML runs (seed 2 missing); seed 7 of one (not expected)."""
    for seed, (b1, b5, c1, c5) in enumerate(
        [(40.0, 60.0, 50.0, 65.0), (42.0, 62.0, 52.0, 66.0), (44.0, 64.0, None, None)]
    ):
        write_result(tmp_path / f"b1_{seed}", "base_1", seed, {"accuracy@1shot": b1}, train_seconds=10.0)
        write_result(tmp_path / f"b5_{seed}", "base_5", seed, {"accuracy@5shot": b5}, train_seconds=30.0)
        if c1 is not None:
            write_result(tmp_path / f"c1_{seed}", "conml_1", seed, {"accuracy@1shot": c1}, train_seconds=12.0)
            write_result(tmp_path / f"c5_{seed}", "conml_5", seed, {"accuracy@5shot": c5}, train_seconds=40.0)
    write_result(tmp_path / "stray", "base_1", 7, {"accuracy@1shot": 99.0})
    write_result(tmp_path / "other_table", "unrelated", 0, {"mse@5shot": 1.0})
    return tmp_path


def test_cells_are_summarised_over_seeds_and_missing_seeds_are_counted(toy_runs):
    result = aggregate(TOY, collect_runs([toy_runs]), seeds=(0, 1, 2))
    base1, conml1, base5, conml5, gain, time = result.entries
    assert base1.values == {0: 40.0, 1: 42.0, 2: 44.0} and base1.mean == pytest.approx(42.0)
    # Student t with 2 degrees of freedom: 4.303 * std / sqrt(3), std = 2.
    assert base1.spread == pytest.approx(4.302653 * 2.0 / math.sqrt(3), rel=1e-5)
    assert base1.difference == pytest.approx(2.0)
    assert conml1.values == {0: 50.0, 1: 52.0, 2: None} and conml1.missing_seeds == [2]
    assert gain.values[0] == pytest.approx(100 * (115 / 100 - 1)) and gain.values[1] == pytest.approx(
        100 * (118 / 104 - 1)
    )
    assert gain.values[2] is None
    assert time.values[0] == pytest.approx(52.0 / 40.0)
    assert any("seeds [7]" in note for note in result.notes)
    assert {run.name for run in result.runs} == {"base_1", "base_5", "conml_1", "conml_5"}


def test_a_cell_without_any_run_is_shown_missing(tmp_path):
    write_result(tmp_path / "a", "base_1", 0, {"accuracy@1shot": 40.0})
    result = aggregate(TOY, collect_runs([tmp_path]), seeds=(0,))
    text = render.markdown(result)
    assert "| ConML | acc | 50.00 ± 1.00 | missing |  | 0/1 |" in text
    assert "| Base | acc | 40.00 ± 1.00 | 40.00 | +0.00 | 1/1 |" in text


def test_a_rerun_job_counts_once_with_the_newest_result(tmp_path):
    write_result(tmp_path / "old", "base_1", 0, {"accuracy@1shot": 10.0}, mtime=1_000_000)
    write_result(tmp_path / "new", "base_1", 0, {"accuracy@1shot": 30.0}, mtime=2_000_000)
    result = aggregate(TOY, collect_runs([tmp_path]), seeds=(0,))
    assert result.entries[0].mean == 30.0
    assert any("2 runs of base_1 with seed 0" in note and "new" in note for note in result.notes)


def test_the_caption_names_the_seeds_that_were_run_not_those_planned(toy_runs, tmp_path):
    result = aggregate(TOY, collect_runs([toy_runs]), seeds=(0, 1, 2, 3))
    text = render.caption(result)
    assert "over the seeds run so far, [0, 1, 2] of the planned [0, 1, 2, 3]" in text and "over seeds [" not in text


def test_markdown_latex_and_json_show_paper_ours_difference_and_the_scale(toy_runs, tmp_path):
    result = aggregate(TOY, collect_runs([toy_runs]), seeds=(0, 1, 2))
    paths = render.write(result, tmp_path / "out", "python scripts/table.py run toy")
    markdown = paths["md"].read_text()
    assert "over seeds [0, 1, 2]" in markdown and "Meta-training iterations per run: 100" in markdown
    assert "| Base | acc | 40.00 ± 1.00 | 42.00 ± 4.97 | +2.00 | 3/3 |" in markdown
    assert "| ConML | acc | 50.00 ± 1.00 | 51.00 ± 12.71 | +1.00 | 2/3 |" in markdown
    assert "| ConML | gain | 10.00% |" in markdown
    latex = paths["tex"].read_text()
    assert r"\begin{tabular}" in latex and r"40.00 $\pm$ 1.00" in latex and r"\caption{Toy table." in latex
    entries = json.loads(paths["json"].read_text())["entries"]
    assert entries[1]["missing_seeds"] == [2] and entries[1]["ours"]["per_seed"] == {"0": 50.0, "1": 52.0, "2": None}


def test_runs_are_told_apart_by_config_values(tmp_path):
    cells = tuple(
        Cell(task, ACC, MetaTestMetric(RunKey("loo", (("dataset.held_out", task),)), ("accuracy@4shot",)))
        for task in ("lines", "arrows")
    )
    table = Table("loo", "LOO", "by hand", cells)
    for task, value in (("lines", 60.0), ("arrows", 90.0)):
        write_result(tmp_path / task, "loo", 0, {"accuracy@4shot": value}, config={"dataset": {"held_out": task}})
    lines, arrows = aggregate(table, collect_runs([tmp_path]), seeds=(0,)).entries
    assert (lines.mean, arrows.mean) == (60.0, 90.0)


def test_wandb_group_runs_become_table_runs():
    remote = SimpleNamespace(
        id="abc",
        summary={"test/accuracy@1shot": 41.0, "test/accuracy@1shot_ci95": 0.5, "_step": 200},
        config={"name": "base_1", "seed": 3},
    )
    api = SimpleNamespace(runs=lambda project, filters: [remote] if filters["group"] == "base_1" else [])
    (run,) = wandb_runs("me/conml", ["base_1", "conml_1"], api=api)
    assert (run.name, run.seed, run.steps, run.run_dir) == ("base_1", 3, 200, None)
    assert run.test == {"accuracy@1shot": {"mean": 41.0, "ci95": 0.5, "count": None}}
    assert run.source == "wandb:me/conml/abc"


def test_aggregate_cli_writes_the_table(toy_runs, tmp_path, monkeypatch):
    monkeypatch.setitem(TABLES, "toy", TOY)
    assert (
        main(
            [
                "aggregate",
                "toy",
                str(toy_runs),
                "--seeds",
                "0,1",
                "--out",
                str(tmp_path / "out"),
                "--wandb-mode",
                "disabled",
            ]
        )
        == 0
    )
    assert "| Base | acc | 40.00 ± 1.00 | 41.00 ± 12.71 | +1.00 | 2/2 |" in (tmp_path / "out" / "toy.md").read_text()
    assert main(["aggregate", "no_such_table", str(toy_runs)]) == 2


def test_smoke_and_user_overrides_replace_sweep_values():
    table = TABLES["samediff_loo"]
    parameters = sweep_parameters(
        table,
        (42, 43),
        smoke=True,
        overrides=["trainer.steps=3", "hydra/launcher=local", "model.fc_units=4"],
    )
    assert parameters["experiment"] == "samediff_loo_conv6_fomaml" and parameters["seed"] == "42,43"
    assert parameters["dataset.held_out"] == "lines,arrows" and parameters["trainer.steps"] == "3"
    assert parameters["hydra/launcher"] == "local"
    assert parameters["model.fc_units"] == "4" and "++model.fc_units" not in parameters
    full = sweep_parameters(table, (42,), smoke=False, overrides=[])
    assert len(full["dataset.held_out"].split(",")) == 10 and "trainer.steps" not in full


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_table_reads_runs_its_sweep_trains(name):
    """A renamed protocol or sweep axis must not silently empty a table cell: every run a cell reads is a cell of a
    table sweep (configs/table/), which is what `scripts/table.py run` trains."""
    swept = every_sweep_cell()
    assert TABLES[name].presets and [p for p in TABLES[name].presets if p not in swept] == []


def test_same_different_cells_average_support_sizes_and_tasks(tmp_path):
    accuracies = {"lines": {4: 60.0, 6: 70.0, 8: 80.0, 10: 90.0}, "arrows": {4: 50.0, 6: 50.0, 8: 50.0, 10: 50.0}}
    test = {f"{task}/accuracy@{s}shot": value for task, by_size in accuracies.items() for s, value in by_size.items()}
    write_result(tmp_path / "a1", "same_different-fomaml-kim_conv6", 42, test)
    write_result(
        tmp_path / "loo",
        "samediff_loo_conv6_fomaml",
        42,
        {
            "lines/accuracy@4shot": 55.0,
            "lines/accuracy@6shot": 65.0,
            "lines/accuracy@8shot": 75.0,
            "lines/accuracy@10shot": 85.0,
        },
        config={"dataset": {"held_out": "lines"}},
    )
    runs = collect_runs([tmp_path])
    a1 = {(e.cell.row, e.cell.column.header): e for e in aggregate(TABLES["samediff"], runs, seeds=(42,)).entries}
    assert a1[("lines", "Meta 6L")].mean == 75.0 and a1[("arrows", "Meta 6L")].mean == 50.0
    assert a1[("Average", "Meta 6L")].mean == 62.5 and a1[("Average", "Meta 6L")].cell.paper.value == 97.6
    assert a1[("regular", "Meta 6L")].mean is None and a1[("lines", "Vanilla 2L")].mean is None
    loo = {e.cell.row: e.mean for e in aggregate(TABLES["samediff_loo"], runs, seeds=(42,)).entries}
    assert loo["lines"] == 70.0 and loo["arrows"] is None


def test_icl_cells_compare_the_curves_of_seed_matched_runs(tmp_path):
    curves = {"plain": [1.0, 0.8, 0.5, 0.4, 0.45], "conml": [1.0, 0.6, 0.3, 0.2, 0.25]}
    for variant, mean in curves.items():
        folder = tmp_path / variant
        write_result(folder, f"linear_regression-toy-{variant}", 0, {"mse@10shot": mean[-1]})
        (folder / "analysis").mkdir()
        (folder / "analysis" / "icl_curve.json").write_text(
            json.dumps({"steps": 100, "shots": list(range(5)), "mean": mean, "ci95": [0.0] * 5})
        )
    entries = {
        (e.cell.row, e.cell.column.header): e
        for e in aggregate(TABLES["table5"], collect_runs([tmp_path]), seeds=(0,)).entries
    }
    assert entries[("LR (10 shot)", "Rel. Min. Error ↓")].mean == pytest.approx(0.2 / 0.4)
    assert (
        entries[("LR (10 shot)", "Shot Spare ↓")].mean == 2 - 3
    )  # ConML reaches ICL's best (0.4, at 3 shots) at 2 shots
    assert entries[("DT (20 shot)", "Shot Spare ↓")].mean is None


def test_metadataset_cells_read_each_source_and_their_average(tmp_path):
    """Rows are the ten test sources and their mean; a column per training setting and ConML, and ConML − plain."""
    sources = [
        "ilsvrc_2012",
        "omniglot",
        "aircraft",
        "cu_birds",
        "dtd",
        "quickdraw",
        "fungi",
        "vgg_flower",
        "traffic_sign",
        "mscoco",
    ]
    plain = {f"{source}/accuracy": 50.0 + i for i, source in enumerate(sources)}
    write_result(tmp_path / "plain", "metadataset_ilsvrc-simple_cnaps-plain", 0, plain)
    write_result(tmp_path / "conml", "metadataset_ilsvrc-simple_cnaps-conml", 0, {k: v + 2.0 for k, v in plain.items()})
    found = {
        (e.cell.row, e.cell.column.header): e.mean
        for e in aggregate(TABLES["metadataset"], collect_runs([tmp_path]), seeds=(0,)).entries
    }
    assert found["omniglot", "ILSVRC only, plain (acc. %)"] == 51.0
    assert found["Average", "ILSVRC only, ConML (acc. %)"] == 56.5
    assert found["traffic_sign", "ILSVRC only, ConML − plain (points)"] == 2.0
    assert found["omniglot", "8 sources, plain (acc. %)"] is None, "no run trained on the eight sources"
