"""The committed tables are functions of the committed runs: aggregating the runs exported to docs/results/<folder>/
again gives every cell of docs/tables/<table>.json, which is what the table's `make` target rebuilds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conml.tables.cli import main

ROOT = Path(__file__).resolve().parents[2]
# Each table whose runs are committed, and their folder under docs/results/.
COMMITTED = {"table2": "table2_20k", "table5": "table5_toy", "omniglot": "omniglot_cpu"}


def cells(table: dict) -> list:
    return [(e["method"], e["metric"], e["ours"], e["paper"]) for e in table["entries"]]


def test_the_make_targets_rebuild_from_these_folders():
    rebuilt = dict(re.findall(r"\$\(call COMMITTED_TABLE,(\w+),docs/results/(\w+),", (ROOT / "Makefile").read_text()))
    assert rebuilt == COMMITTED


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_the_committed_table_rebuilds_from_the_committed_runs(name, tmp_path):
    runs = ROOT / "docs" / "results" / COMMITTED[name]
    arguments = ["aggregate", name, str(runs), "--out", str(tmp_path), "--wandb-mode", "disabled", "--no-figures"]
    assert main(arguments) == 0
    rebuilt = json.loads((tmp_path / f"{name}.json").read_text())
    committed = json.loads((ROOT / "docs" / "tables" / f"{name}.json").read_text())
    assert cells(rebuilt) == cells(committed)
    assert any(e["ours"] is not None for e in committed["entries"]), "the committed table holds measured cells"
