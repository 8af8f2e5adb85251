"""A paper table as a Hydra sweep: the values its cells take, read from configs/table/<table>.yaml.

The file's `hydra.sweeper.params` are the table's axes; each combination of their values (seeds
aside) is one cell, trained by `python -m conml.train <its overrides>` and named from the swept
values (`conml.cell_name`, as the protocols name their runs), so that two tables needing one run find it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from conml.cell_name import cell_name, leaf

TABLE_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "table"


@dataclass(frozen=True)
class SweepCell:
    """One cell of a table's sweep: the overrides that compose its run, in the order of the axes."""

    overrides: tuple[str, ...]

    def value(self, key: str) -> str:
        return next(o.partition("=")[2] for o in self.overrides if o.partition("=")[0] == key)

    @property
    def protocol(self) -> str:
        """The protocol file's own name: the learner in fewshot/<learner> and samediff/<learner>, the row in
        sine/<row>, the scale in icl/<scale>."""
        return leaf(self.value("experiment"))

    @property
    def run_name(self) -> str:
        """The run's `name`: its swept groups and shots in the order of the axes, as the protocols derive
        it (miniimagenet-maml-1shot-plain, same_different-fomaml-kim_conv6)."""
        return cell_name({key: value for key, value in self._pairs() if _named(key)})

    @property
    def where(self) -> tuple[tuple[str, Any], ...]:
        """The swept settings a run name leaves out (conml.lam of a lambda sweep), which tell runs of one name apart."""
        return tuple((key, yaml.safe_load(value)) for key, value in self._pairs() if not _named(key))

    def _pairs(self) -> list[tuple[str, str]]:
        return [tuple(override.split("=", 1)) for override in self.overrides]


def _named(key: str) -> bool:
    """Whether a swept key is part of the run name: config groups, ways and shots are; other settings are not."""
    return "." not in key or key in ("dataset.ways", "dataset.shots")


def table_axes(table: str) -> dict[str, list[str]]:
    """The swept values of configs/table/<table>.yaml by key, seeds included, in file order."""
    return {key: list(values) for key, values in _read_axes(table)}


@cache
def _read_axes(table: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The file read once per process: preset lookups ask for every table's cells many times."""
    params = yaml.safe_load((TABLE_CONFIGS / f"{table}.yaml").read_text())["hydra"]["sweeper"]["params"]
    return tuple((key, tuple(v.strip() for v in str(values).split(","))) for key, values in params.items())


def table_cells(table: str) -> list[SweepCell]:
    """Every cell of the table (each combination of its axes but the seed)."""
    axes = {key: values for key, values in table_axes(table).items() if key != "seed"}
    return [
        SweepCell(tuple(f"{key}={value}" for key, value in zip(axes, combination)))
        for combination in itertools.product(*axes.values())
    ]


def table_sweep(table: str) -> dict[str, str]:
    """The table's axes but the seed as multirun parameters (key -> comma-separated values)."""
    return {key: ",".join(values) for key, values in table_axes(table).items() if key != "seed"}


def every_sweep_cell() -> dict[str, SweepCell]:
    """The cells of every table file, by run name: a run two tables share appears once, as the first table
    (by file name) has it (table2 before table2_lambda, whose runs differ from it only by a setting)."""
    cells: dict[str, SweepCell] = {}
    for path in sorted(TABLE_CONFIGS.glob("*.yaml")):
        for cell in table_cells(path.stem):
            cells.setdefault(cell.run_name, cell)
    return cells


def preset_overrides(name: str) -> list[str]:
    """The overrides that compose the run called `name`: a table sweep's cell, or the preset file `experiment=<name>`."""
    cell = every_sweep_cell().get(name)
    return list(cell.overrides) if cell else [f"experiment={name}"]
