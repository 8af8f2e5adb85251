"""The Omniglot table: every image learner, plain and with ConML, beside the published numbers.

The cells are the sweep of configs/table/omniglot.yaml (learner x ways x shots x ConML off/on);
the published accuracies are data in conml/tables/paper/omniglot.yaml. Per learner and episode
shape the table gives the plain accuracy beside its paper's number, the ConML accuracy, ConML minus
plain per seed (so its CI over seeds is a paired one), ConML's gradient share, and the steps the
runs trained (CPU-length runs train fewer than their protocol; docs/results/omniglot.md).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from conml.tables.images import LABELS
from conml.tables.measures import Difference, GradShare, MetaTestMetric, TrainedSteps
from conml.tables.spec import Cell, Column, Paper, RunKey, Table
from conml.tables.table_sweep import table_axes, table_cells, table_sweep

PAPER = yaml.safe_load((Path(__file__).parent / "paper" / "omniglot.yaml").read_text())


def omniglot_table() -> Table:
    axes = table_axes("omniglot")
    runs = {
        (c.protocol, c.value("dataset.ways"), c.value("dataset.shots"), c.value("conml")): RunKey(c.run_name)
        for c in table_cells("omniglot")
    }
    cells = []
    for learner in dict.fromkeys(key[0] for key in runs):
        numbers = PAPER.get(learner, {})
        for ways in axes["dataset.ways"]:
            for shots in axes["dataset.shots"]:
                row = f"{LABELS.get(learner, learner)} {ways}-way {shots}-shot"
                plain, conml = (
                    MetaTestMetric(runs[learner, ways, shots, variant], (f"accuracy@{shots}shot",))
                    for variant in ("off", "on")
                )
                printed = numbers.get(f"{ways}way-{shots}shot")
                cells += [
                    Cell(row, Column("plain (acc. %)", digits=2), plain, printed and Paper(*printed)),
                    Cell(row, Column("ConML (acc. %)", digits=2), conml),
                    Cell(row, Column("ConML − plain (points)", digits=2), Difference(conml, plain)),
                    Cell(row, Column("ConML gradient share", digits=2, style="e"), GradShare(conml.run)),
                    Cell(row, Column("steps trained", digits=0), TrainedSteps(plain.run)),
                ]
    sources = "; ".join(f"{LABELS.get(name, name)}: {entry['source']}" for name, entry in PAPER.items())
    return Table(
        name="omniglot",
        title="Omniglot (Vinyals et al. split, rotated classes): every image learner without and with ConML",
        source=sources,
        cells=tuple(cells),
        seeds=tuple(int(s) for s in axes["seed"]),
        sweeps=(table_sweep("omniglot"),),
        smoke={"++dataset.train_ways": "null", "dataset.queries": "1", "eval.queries": "1"},
        notes=(
            "ConML − plain is taken per seed (seed s against seed s) and then averaged, so its ± is a paired 95% CI over seeds.",
            "Runs on this 2-core CPU train fewer steps than their protocol ('steps trained'); docs/results/omniglot.md gives the plan, the validation curves and the reading.",
        ),
    )


TABLE_OMNIGLOT = omniglot_table()
