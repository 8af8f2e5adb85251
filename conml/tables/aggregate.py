"""Fill a table's cells from runs: one value per expected seed, then mean and spread over seeds.

A cell whose runs are missing for some seeds shows how many it has; one with none shows as
missing. When a seed has several runs of one preset (a job re-run), the newest is used and
the table says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from conml.metrics import mean_t_ci
from conml.tables.runs import Run
from conml.tables.spec import Cell, RunKey, Table


@dataclass
class Entry:
    """A filled cell: our value per expected seed (None: missing, NaN: undefined) and their summary."""

    cell: Cell
    values: dict[int, float | None]
    mean: float | None = None
    spread: float | None = None

    @property
    def found(self) -> list[float]:
        return [v for v in self.values.values() if v is not None and math.isfinite(v)]

    @property
    def missing_seeds(self) -> list[int]:
        return [seed for seed, v in self.values.items() if v is None]

    @property
    def undefined_seeds(self) -> list[int]:
        return [seed for seed, v in self.values.items() if v is not None and not math.isfinite(v)]

    @property
    def difference(self) -> float | None:
        paper = self.cell.paper
        if self.mean is None or paper is None or paper.value is None:
            return None
        return self.mean - paper.value


@dataclass
class Aggregate:
    table: Table
    seeds: tuple[int, ...]
    entries: list[Entry]
    runs: list[Run]
    notes: list[str] = field(default_factory=list)


def aggregate(table: Table, runs: list[Run], seeds: tuple[int, ...] | None = None) -> Aggregate:
    """The table's entries from `runs`, expecting each cell's runs for every one of `seeds`."""
    seeds = tuple(table.seeds if seeds is None else seeds)
    presets = set(table.presets)
    relevant = [run for run in runs if run.name in presets]
    notes = []
    ignored = sorted({run.seed for run in relevant} - set(seeds))
    if ignored:
        notes.append(f"Runs with seeds {ignored} were found and left out: the table expects seeds {list(seeds)}.")
    by_seed: dict[int, list[Run]] = defaultdict(list)
    for run in relevant:
        by_seed[run.seed].append(run)
    used: dict[tuple[int, RunKey], Run] = {}

    def finder(seed: int):
        def find(key: RunKey) -> Run | None:
            if (seed, key) not in used:
                matching = sorted((r for r in by_seed[seed] if key.matches(r)), key=lambda r: r.finished_at)
                if len(matching) > 1:
                    notes.append(
                        f"{len(matching)} runs of {key} with seed {seed}; the newest ({_where(matching[-1])}) is used."
                    )
                used[(seed, key)] = matching[-1] if matching else None
            return used[(seed, key)]

        return find

    entries = []
    for cell in table.cells:
        entry = Entry(cell, {seed: cell.measure(finder(seed)) for seed in seeds})
        if entry.found:
            entry.mean, entry.spread = _summary(entry.found, table.spread)
        entries.append(entry)
    return Aggregate(table, seeds, entries, [run for run in used.values() if run is not None], notes)


def _summary(values: list[float], spread: str) -> tuple[float, float | None]:
    """Mean and, from two values on, the spread the paper uses: 95% CI (Student t) or standard deviation."""
    if len(values) < 2:
        return values[0], None
    if spread == "std":
        return float(np.mean(values)), float(np.std(values, ddof=1))
    summary = mean_t_ci(values)
    return summary.mean, summary.ci95


def _where(run: Run) -> str:
    return str(run.run_dir) if run.run_dir is not None else run.source
