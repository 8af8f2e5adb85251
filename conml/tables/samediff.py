"""Same-different tables of Gupta, Rane, McCoy & Griffiths (2025): Table A1, Table B1 (MAML order), leave-one-out.

Paper numbers: same_different.md §5.1 (Table A1: accuracy %, mean ± s.d. over 10 seeds, from
the authors' `data/appendix_for_paper.tex`) and §5.2 (leave-one-out, stated in words only).
Table B1's numbers are not in the reference, so it shows ours alone. Runs report each test task
at each support size ('<task>/accuracy@<S>shot'); a cell averages those of one task, or of every
task the run was tested on, over support sizes 4, 6, 8 and 10 (equal episode counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from conml.tables.spec import Cell, Column, Lookup, Paper, RunKey, Table

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
SEEDS = tuple(range(42, 52))

# Table A1 rows: task -> (Vanilla 2L, 4L, 6L, Meta 2L, 4L, 6L), each (mean, s.d.).
TABLE_A1 = {
    "regular": ((50.0, 0.0), (50.0, 0.0), (50.0, 0.0), (52.2, 5.0), (85.8, 9.9), (98.5, 0.7)),
    "lines": ((79.5, 24.1), (50.0, 0.0), (50.0, 0.0), (78.6, 8.0), (94.8, 14.9), (100.0, 0.1)),
    "open": ((51.4, 4.3), (50.0, 0.0), (50.0, 0.0), (48.8, 6.0), (85.2, 10.3), (97.5, 0.8)),
    "wider_line": ((50.0, 0.0), (50.0, 0.0), (50.0, 0.0), (52.2, 5.0), (84.2, 10.4), (97.8, 0.7)),
    "scrambled": ((99.1, 0.6), (50.0, 0.0), (50.0, 0.0), (82.0, 7.0), (94.4, 14.8), (99.9, 0.1)),
    "random_color": ((55.0, 0.0), (55.0, 0.0), (55.0, 0.0), (49.8, 4.0), (86.3, 7.2), (95.0, 0.7)),
    "arrows": ((50.0, 0.0), (50.0, 0.0), (50.0, 0.0), (48.6, 6.0), (69.0, 11.6), (93.5, 1.8)),
    "irregular": ((50.0, 0.0), (54.2, 12.5), (50.0, 0.0), (45.4, 5.0), (83.0, 12.3), (99.2, 0.4)),
    "filled": ((52.4, 7.2), (50.0, 0.0), (50.0, 0.0), (54.0, 6.0), (84.2, 13.4), (97.9, 0.6)),
    "original": ((50.0, 0.0), (50.0, 0.0), (50.0, 0.0), (51.0, 5.0), (84.0, 10.9), (97.0, 1.3)),
    "Average": ((58.7, 16.0), (50.9, 1.7), (50.5, 1.6), (56.3, 12.6), (85.1, 7.2), (97.6, 2.0)),
}
A1_COLUMNS = tuple(
    (f"{kind} {depth}L", f"samediff_tableA1_conv{depth}_{learner}")
    for kind, learner in (("Vanilla", "conventional"), ("Meta", "fomaml"))
    for depth in (2, 4, 6)
)

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
    return tuple(
        Cell(task, Column(header, digits=1), accuracy(preset, None if task == "Average" else task), Paper(*paper))
        for task, values in TABLE_A1.items()
        for (header, preset), paper in zip(A1_COLUMNS, values)
    )


TABLE_A1_SPEC = Table(
    name="samediff",
    title="Same-different Table A1: in-distribution accuracy on ten tasks, conventional vs first-order MAML, Conv2/4/6",
    source=f"{SOURCE}, Table A1 (same_different.md §5.1)",
    cells=_a1_cells(),
    seeds=SEEDS,
    spread="std",
    smoke=SMOKE,
    notes=(
        "The Average row is the accuracy over all test episodes of all tasks a run was tested on. "
        "The paper's Average ± is the s.d. over tasks; ours is over seeds.",
    ),
)

TABLE_B1_SPEC = Table(
    name="samediff_order",
    title="Same-different Table B1: first- vs second-order MAML, Conv6, in-distribution",
    source=f"{SOURCE}, Table B1 (its numbers are not in same_different.md, so none are shown)",
    cells=tuple(
        Cell(row, Column(f"accuracy % at S={s}" if s else "accuracy % (S = 4, 6, 8, 10)", digits=1), metric)
        for row, preset in (
            ("FOMAML", "samediff_tableB1_conv6_fomaml"),
            ("MAML (second order)", "samediff_tableB1_conv6_maml"),
        )
        for s, metric in ((None, accuracy(preset)), *((s, accuracy(preset, sizes=(s,))) for s in SUPPORT_SIZES))
    ),
    seeds=SEEDS,
    spread="std",
    smoke=SMOKE_CONV6_MAML,
)

# Leave-one-out, paper text (same_different.md §5.2): at or about 95% except arrows, lines and scrambled; lines worst, above chance.
LOO_TEXT = {task: "≈95 (text)" for task in TASKS} | {
    "arrows": "< 95 (text)",
    "scrambled": "< 95 (text)",
    "lines": "lowest, > 50 (text)",
}
LOO_PRESET = "samediff_loo_conv6_fomaml"

TABLE_LOO_SPEC = Table(
    name="samediff_loo",
    title="Same-different leave-one-out: Conv6 + first-order MAML meta-trained on nine tasks, tested on the held-out one",
    source=f"{SOURCE}, leave-one-out results (stated in words only; same_different.md §5.2)",
    cells=tuple(
        Cell(
            task,
            Column("held-out accuracy % (15 adaptation steps)", digits=1),
            accuracy(LOO_PRESET, task, where=(("dataset.held_out", task),)),
            Paper(text=LOO_TEXT[task]),
        )
        for task in TASKS
    ),
    seeds=SEEDS,
    spread="std",
    sweep={"dataset.held_out": ",".join(TASKS)},
    smoke={**SMOKE_CONV6_MAML, "dataset.held_out": "lines,arrows"},
)
