"""Same-different tables of Gupta, Rane, McCoy & Griffiths (2025): Table A1, Table B1 (MAML order), leave-one-out.

Tables A1 and B1 are the sweeps configs/table/samediff.yaml and samediff_order.yaml (they share
the Conv6 first-order MAML runs); leave-one-out is configs/table/samediff_loo.yaml. Paper numbers: conml/tables/paper/samediff.yaml (same_different.md
§5.1, Table A1) and §5.2 (leave-one-out, stated in words only, below).
Table B1's numbers are not in the reference, so it shows ours alone. Runs report each test task
at each support size ('<task>/accuracy@<S>shot'); a cell averages those of one task, or of every
task the run was tested on, over support sizes 4, 6, 8 and 10 (equal episode counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from conml.tables.spec import Cell, Column, Lookup, Paper, RunKey, Table
from conml.tables.table_sweep import table_axes, table_cells, table_sweep

TASKS = (
    "regular",
    "lines",
    "open",
    "wider_line",
    "scrambled",
    "random_color",
    "arrows",
    "irregular",
    "filled",
    "original",
)
SUPPORT_SIZES = (4, 6, 8, 10)

PAPER = Path(__file__).parent / "paper" / "samediff.yaml"
# Column labels of the learners the tables sweep.
KINDS = {"conventional": "Vanilla", "fomaml": "Meta"}
ORDER_ROWS = {"fomaml": "FOMAML", "maml": "MAML (second order)"}


def _depth(model: str) -> str:
    """Layers of a kim_conv<N> network, as the paper's headers write them ('6L')."""
    return f"{model.removeprefix('kim_conv')}L"


# Shared by every same-different multirun in smoke mode, on top of debug=smoke: two tasks, supports of 4.
SMOKE = {
    "++model.fc_units": "8",
    "++dataset.tasks": "[lines,arrows]",
    "++dataset.support_sizes": "[4]",
    "++dataset.episodes": "[4,2,2]",
}
# B1 and leave-one-out are Conv6 + MAML only, so their smoke runs can also be narrow and adapt once.
SMOKE_CONV6_MAML = {
    **SMOKE,
    "++model.channels": "[2,2,2,2,2,2]",
    "++learner.inner_steps": "1",
    "++learner.eval_inner_steps": "1",
}
SOURCE = "Gupta, Rane, McCoy & Griffiths, Convolutional Neural Networks Can (Meta-)Learn the Same-Different Relation (CogSci 2025)"


@dataclass(frozen=True)
class TaskAccuracy:
    """A run's mean test accuracy over `sizes`, on one task or (task None) on every task it was tested on."""

    run: RunKey
    sizes: tuple[int, ...] = SUPPORT_SIZES
    task: Optional[str] = None

    def runs(self) -> tuple[RunKey, ...]:
        return (self.run,)

    def __call__(self, find: Lookup) -> float | None:
        found = find(self.run)
        if found is None:
            return None
        values = []
        for size in self.sizes:
            keys = [
                k for k in found.test if k.endswith(f"/accuracy@{size}shot") and self.task in (None, k.split("/")[0])
            ]
            if not keys:
                return None
            values += [found.test[k]["mean"] for k in keys]
        return sum(values) / len(values)


def accuracy(
    preset: str, task: str | None = None, where: tuple = (), sizes: tuple[int, ...] = SUPPORT_SIZES
) -> TaskAccuracy:
    return TaskAccuracy(RunKey(preset, where), sizes, task)


def _a1_cells() -> tuple[Cell, ...]:
    """Rows are test tasks (and their average); columns are the cells of configs/table/samediff.yaml, in its order."""
    paper = yaml.safe_load(PAPER.read_text())
    columns = [(f"{KINDS[c.protocol]} {_depth(c.value('model'))}", c.run_name) for c in table_cells(TABLE_A1_NAME)]
    return tuple(
        Cell(task, Column(header, digits=1), accuracy(run, None if task == "Average" else task), Paper(*printed))
        for task, values in paper.items()
        for (header, run), printed in zip(columns, values)
    )


TABLE_A1_NAME, TABLE_B1_NAME = "samediff", "samediff_order"
SEEDS = tuple(int(s) for s in table_axes(TABLE_A1_NAME)["seed"])

TABLE_A1_SPEC = Table(
    name=TABLE_A1_NAME,
    title="Same-different Table A1: in-distribution accuracy on ten tasks, conventional vs first-order MAML, Conv2/4/6",
    source=f"{SOURCE}, Table A1 (same_different.md §5.1)",
    cells=_a1_cells(),
    seeds=SEEDS,
    spread="std",
    sweeps=(table_sweep(TABLE_A1_NAME),),
    smoke=SMOKE,
    notes=(
        "The Average row is the accuracy over all test episodes of all tasks a run was tested on. "
        "The paper's Average ± is the s.d. over tasks; ours is over seeds.",
    ),
)

TABLE_B1_SPEC = Table(
    name=TABLE_B1_NAME,
    title="Same-different Table B1: first- vs second-order MAML, Conv6, in-distribution",
    source=f"{SOURCE}, Table B1 (its numbers are not in same_different.md, so none are shown)",
    cells=tuple(
        Cell(
            ORDER_ROWS[c.protocol],
            Column(f"accuracy % at S={s}" if s else "accuracy % (S = 4, 6, 8, 10)", digits=1),
            metric,
        )
        for c in table_cells(TABLE_B1_NAME)
        for s, metric in ((None, accuracy(c.run_name)), *((s, accuracy(c.run_name, sizes=(s,))) for s in SUPPORT_SIZES))
    ),
    seeds=tuple(int(s) for s in table_axes(TABLE_B1_NAME)["seed"]),
    spread="std",
    sweeps=(table_sweep(TABLE_B1_NAME),),
    smoke=SMOKE_CONV6_MAML,
)

# Leave-one-out, paper text (same_different.md §5.2): at or about 95% except arrows, lines and scrambled; lines worst, above chance.
LOO_TEXT = {task: "≈95 (text)" for task in TASKS} | {
    "arrows": "< 95 (text)",
    "scrambled": "< 95 (text)",
    "lines": "lowest, > 50 (text)",
}
TABLE_LOO_NAME = "samediff_loo"

TABLE_LOO_SPEC = Table(
    name=TABLE_LOO_NAME,
    title="Same-different leave-one-out: Conv6 + first-order MAML meta-trained on nine tasks, tested on the held-out one",
    source=f"{SOURCE}, leave-one-out results (stated in words only; same_different.md §5.2)",
    cells=tuple(
        Cell(
            c.value("dataset.held_out"),
            Column("held-out accuracy % (15 adaptation steps)", digits=1),
            accuracy(c.run_name, c.value("dataset.held_out"), where=c.where),
            Paper(text=LOO_TEXT[c.value("dataset.held_out")]),
        )
        for c in table_cells(TABLE_LOO_NAME)
    ),
    seeds=tuple(int(s) for s in table_axes(TABLE_LOO_NAME)["seed"]),
    spread="std",
    sweeps=(table_sweep(TABLE_LOO_NAME),),
    smoke={**SMOKE_CONV6_MAML, "dataset.held_out": "lines,arrows"},
)
