"""What a paper table is made of: cells that pair the paper's number with a way to measure ours.

A cell's measure reads the runs of one seed (found by preset name and, where one preset fills
several cells, by config values) and returns one number; the table reports the mean and spread
of that number over seeds beside the paper's value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from conml.tables.runs import Run, setting


@dataclass(frozen=True)
class RunKey:
    """The runs of one preset, optionally only those whose config has the given values."""

    preset: str
    where: tuple[tuple[str, Any], ...] = ()

    def matches(self, run: Run) -> bool:
        return self.fits(run.name, run.config)

    def fits(self, name: str, config: dict) -> bool:
        """Whether a run called `name` with `config` (a plain dict) is one of these runs."""
        return name == self.preset and all(setting(config, path) == value for path, value in self.where)

    def __str__(self) -> str:
        return self.preset + "".join(f" {path}={value}" for path, value in self.where)


Lookup = Callable[[RunKey], Optional[Run]]


class Measure(Protocol):
    """One number per seed from that seed's runs; None when a run it needs is missing."""

    def runs(self) -> tuple[RunKey, ...]: ...

    def __call__(self, find: Lookup) -> float | None: ...


@dataclass(frozen=True)
class Paper:
    """A number as the paper prints it; `text` instead when the paper states it only in words."""

    value: Optional[float] = None
    spread: Optional[float] = None
    text: Optional[str] = None


@dataclass(frozen=True)
class Column:
    """A column of the paper's table: its header, how its numbers are written, and a unit suffix.

    `style` is a Python format type: 'f' (fixed, `digits` decimals) or 'e' (scientific, for
    quantities far below 1 such as cosine distances between weight vectors).
    """

    header: str
    digits: int = 4
    unit: str = ""
    style: str = "f"


@dataclass(frozen=True)
class Cell:
    row: str
    column: Column
    measure: Measure
    paper: Optional[Paper] = None


@dataclass(frozen=True)
class Table:
    """A paper table to re-run: its cells, the seeds, and how its multirun is shrunk for smoke tests.

    `spread` is what '±' means in the paper's table (95% CI, or standard deviation), and ours
    follows it. `sweeps` are the table's multiruns, each the parameters it adds beyond presets and
    seeds (one value list per key): one grid for most tables; Table 2 has two, since a grid cannot
    leave out the 5-shot ablations the paper does not show. `smoke` adds the table's own values to `debug=smoke` (configs/debug/smoke.yaml) for a quick
    end-to-end check (tiny data, a few steps).
    `figures(runs, out_dir)` draws the table's figures from the runs it found.
    """

    name: str
    title: str
    source: str
    cells: tuple[Cell, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    spread: str = "ci95"
    sweeps: tuple[dict[str, str], ...] = ({},)
    smoke: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    figures: Optional[Callable] = None

    @property
    def run_keys(self) -> list[RunKey]:
        """Every run a cell reads for one seed (a lambda sweep's runs share a name and differ by `where`)."""
        return list(dict.fromkeys(key for cell in self.cells for key in cell.measure.runs()))

    def key_of(self, name: str, config: dict) -> RunKey | None:
        """The runs a run called `name` with `config` is one of (its cell, by its name and the settings that tell
        runs of one name apart, such as conml.lam), or None if it fills no cell of the table."""
        return next((key for key in self.run_keys if key.fits(name, config)), None)

    @property
    def presets(self) -> list[str]:
        """Every preset a cell reads, in order of first use."""
        return list(dict.fromkeys(key.preset for cell in self.cells for key in cell.measure.runs()))
