"""The committed tables in docs/tables/ are results: a rebuild may fill them, never empty or change them unasked.

`check_docs` is what `scripts/table.py ... --docs` passes before writing anything there: no smoke runs, no runs on
synthetic data, at least one filled cell, and, against the committed <table>.json, no number lost or changed unless
--force. Cells the committed table shows as missing may be filled (Table 5 and Omniglot grow run by run).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from conml.errors import ConfigError, DataError
from conml.tables.aggregate import Aggregate, Entry
from conml.tables.provenance import is_smoke, is_synthetic

LISTED = 20  # cells named in a refusal; the rest are counted


def check_docs(result: Aggregate, docs: Path, force: bool) -> None:
    """Refuse to write `result` over docs/<table>.*: see the module's docstring."""
    name = result.table.name
    marked = [
        (run, kind)
        for run in result.runs
        for kind, test in (("smoke", is_smoke), ("synthetic-data", is_synthetic))
        if test(run)
    ]
    if marked:
        run, kind = marked[0]
        where = run.run_dir or run.source
        raise ConfigError(
            f"{len(marked)} of the runs of {name} are {kind} runs (e.g. {where}), and the committed {docs}/{name}.* "
            "hold results of the table's own protocol only: nothing was written. Write this table beside the runs or "
            "into --out DIR instead of --docs (--force does not lift this)."
        )
    if not any(_value(entry) is not None for entry in result.entries):
        raise DataError(
            f"Not one cell of {name} has a number from the runs found, so there is nothing to write over {docs}/{name}.* "
            "(--force does not lift this): nothing was written. Check that the folder holds finished runs of the "
            f"table's presets and seeds (`python scripts/table.py list`), or write the table into --out DIR."
        )
    committed = docs / f"{name}.json"
    if force or not committed.exists():
        return
    differences = compare(json.loads(committed.read_text()), result.entries)
    if differences:
        listed = "; ".join(differences[:LISTED]) + (
            f"; and {len(differences) - LISTED} more" if len(differences) > LISTED else ""
        )
        raise DataError(
            f"Writing {name} would change {len(differences)} number(s) of the committed {committed} "
            f"(method / metric: committed → new): {listed}. Nothing was written. Committed numbers are only filled in, "
            "never lost or changed, unless you mean it: compare by writing into --out DIR, and pass --force to replace "
            "the committed table."
        )


def compare(committed: dict, entries: list[Entry]) -> list[str]:
    """Each cell that has a number in the committed table JSON and would lose it or get another, as text."""
    new = dict(zip(_keys((e.cell.row, e.cell.column.header) for e in entries), entries))
    old_entries = committed.get("entries", [])
    differences = []
    for key, old in zip(_keys((e["method"], e["metric"]) for e in old_entries), old_entries):
        before = old.get("ours", {}).get("mean")
        if before is None or not math.isfinite(before):
            continue  # a missing cell may be filled: committed tables grow run by run
        entry = new.get(key)
        after = None if entry is None else _value(entry)
        if isinstance(after, float) and math.isclose(after, before, rel_tol=1e-9, abs_tol=1e-12):
            continue
        text = (
            "not in the table" if entry is None else f"{after:.6g}" if isinstance(after, float) else after or "missing"
        )
        differences.append(f"{old['method']} / {old['metric']}: {before:.6g} → {text}")
    return differences


def _keys(cells) -> list[tuple[str, str, int]]:
    """(method, metric, n): the n-th cell of that method and metric (they name a cell in every paper table)."""
    seen: dict[tuple[str, str], int] = {}
    keys = []
    for cell in cells:
        seen[cell] = seen.get(cell, -1) + 1
        keys.append((*cell, seen[cell]))
    return keys


def _value(entry: Entry) -> float | str | None:
    """A cell's number, 'undefined' when every seed's value is undefined, None when it is missing."""
    if entry.mean is not None:
        return entry.mean
    return "undefined" if entry.undefined_seeds else None
