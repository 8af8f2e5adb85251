"""ConML Tables 3 and 4: 5-way few-shot image classification, each learner without and with ConML.

The cells are the sweep of configs/table/table<N>.yaml (learner x shots x ConML off/on on one
dataset); the paper's numbers are data in conml/tables/paper/table<N>.yaml. One function builds
both tables; only the dataset and the numbers differ.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from conml.tables.measures import MetaTestMetric, RelativeGain, RelativeTime
from conml.tables.spec import Cell, Column, Paper, RunKey, Table
from conml.tables.table_sweep import table_axes, table_cells, table_sweep

PAPER = Path(__file__).parent / "paper"
# Row labels; a learner not listed here is labelled by its config name.
LABELS = {
    "maml": "MAML",
    "fomaml": "FOMAML",
    "reptile": "Reptile",
    "matchingnet": "MatchingNet",
    "protonet": "ProtoNet",
    "simple_cnaps": "Simple CNAPs",
}
CONML_LABELS = {"off": "w/o", "on": "ConML"}


def image_table(number: int, notes: tuple[str, ...] = ()) -> Table:
    """Table `number`: rows are learners; columns 1-/5-shot accuracy without and with ConML, relative gain and time."""
    name = f"table{number}"
    axes = table_axes(name)
    paper = yaml.safe_load((PAPER / f"{name}.yaml").read_text())
    runs = {(c.protocol, c.value("dataset.shots"), c.value("conml")): RunKey(c.run_name) for c in table_cells(name)}
    columns = [(shots, conml) for shots in axes["dataset.shots"] for conml in axes["conml"]]
    cells = []
    for learner in dict.fromkeys(learner for learner, _, _ in runs):
        row, numbers = LABELS.get(learner, learner), paper.get(learner, {})
        metric = {
            (shots, conml): MetaTestMetric(runs[learner, shots, conml], (f"accuracy@{shots}shot",))
            for shots, conml in columns
        }
        printed = numbers.get("accuracy", [None] * len(columns))
        for (shots, conml), value in zip(columns, printed):
            header = f"{shots}-shot {CONML_LABELS[conml]} (acc. %)"
            cells.append(Cell(row, Column(header, digits=2), metric[shots, conml], value and Paper(*value)))
        plain = tuple(metric[shots, "off"] for shots in axes["dataset.shots"])
        conml = tuple(metric[shots, "on"] for shots in axes["dataset.shots"])
        gain, time = numbers.get("gain"), numbers.get("time")
        cells.append(
            Cell(row, Column("Rel. gain", digits=2, unit="%"), RelativeGain(plain, conml), gain and Paper(gain))
        )
        cells.append(
            Cell(
                row,
                Column("Rel. time", digits=2, unit="×"),
                RelativeTime(tuple(m.run for m in plain), tuple(m.run for m in conml)),
                time and Paper(time),
            )
        )
    return Table(
        name=name,
        title=f"ConML Table {number}: 5-way few-shot classification on {axes['dataset'][0]}, without and with ConML",
        source=f"Wu, Wang, Bian, Yao. Learning to Learn with Contrastive Meta-Objective. NeurIPS 2025, arXiv:2410.05975 (Table {number} of its NeurIPS 2024 submission text)",
        cells=tuple(cells),
        seeds=tuple(int(s) for s in axes["seed"]),
        sweeps=(table_sweep(name),),
        smoke={
            # 5-way episodes with one query per class for every learner (ProtoNet trains 30-way otherwise).
            "++dataset.train_ways": "null",
            "++dataset.train_queries": "null",
            "dataset.queries": "1",
            "eval.queries": "1",
        },
        notes=(
            "Rel. gain = (ConML 1-shot + 5-shot accuracy) / (without-ConML 1-shot + 5-shot) - 1, per seed; "
            "Rel. time = ConML / without-ConML total meta-training seconds (train_seconds of results.json), per seed.",
            "The paper labels MatchingNet 'MatchNet' and Simple CNAPs 'SCNAPs'.",
            *notes,
        ),
    )


TABLE3 = image_table(3)
TABLE4 = image_table(
    4,
    (
        "The paper's MatchingNet relative gain (11.00%) disagrees with its own accuracies, which give 10.10% (conml.md §3.2).",
    ),
)
