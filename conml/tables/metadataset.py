"""The Meta-Dataset table: Simple CNAPs without and with ConML, per test source, for both training settings.

The cells are the sweep of configs/table/metadataset.yaml (training sources x ConML off/on): trained on the
eight training sources (dataset=metadataset) or on ILSVRC-2012 alone (dataset=metadataset_ilsvrc), each
tested on the ten sources of configs/dataset/metadataset.yaml. The paper's Meta-Dataset table is not public
(its arXiv v3 numbers are unknown to our reference), so the table shows ours alone, with ConML minus plain
per seed (a paired CI over seeds).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from conml.tables.measures import Difference, MetaTestMetric
from conml.tables.spec import Cell, Column, RunKey, Table
from conml.tables.table_sweep import table_axes, table_cells, table_sweep

NAME = "metadataset"
DATASET = Path(__file__).resolve().parents[2] / "configs" / "dataset" / "metadataset.yaml"
TEST_SOURCES = tuple(yaml.safe_load(DATASET.read_text())["test_sources"])
# Column labels of the swept training settings (the dataset option names them).
TRAINED_ON = {"metadataset": "8 sources", "metadataset_ilsvrc": "ILSVRC only"}


def metadataset_table() -> Table:
    axes = table_axes(NAME)
    runs = {(c.value("dataset"), c.value("conml")): RunKey(c.run_name) for c in table_cells(NAME)}
    cells = []
    for row, metrics in [
        *((source, (f"{source}/accuracy",)) for source in TEST_SOURCES),
        ("Average", tuple(f"{source}/accuracy" for source in TEST_SOURCES)),
    ]:
        for dataset in axes["dataset"]:
            label = TRAINED_ON.get(dataset, dataset)
            plain, conml = (MetaTestMetric(runs[dataset, variant], metrics) for variant in ("off", "on"))
            cells += [
                Cell(row, Column(f"{label}, plain (acc. %)", digits=2), plain),
                Cell(row, Column(f"{label}, ConML (acc. %)", digits=2), conml),
                Cell(row, Column(f"{label}, ConML − plain (points)", digits=2), Difference(conml, plain)),
            ]
    return Table(
        name=NAME,
        title="Meta-Dataset: Simple CNAPs without and with ConML, trained on eight sources or on ILSVRC-2012 alone",
        source="ours alone: the paper's Meta-Dataset table (arXiv v3) is not public",
        cells=tuple(cells),
        seeds=tuple(int(s) for s in axes["seed"]),
        sweeps=(table_sweep(NAME),),
        # Synthetic sources with the real class splits, small episodes, a ResNet-18 trained from scratch.
        smoke={
            "dataset.synthetic": "true",
            "model.pretrained": "null",
            "model.frozen": "false",
            "dataset.max_ways": "5",
            "dataset.train_max_ways": "5",
            "dataset.max_support_set_size": "10",
            "dataset.train_max_support_set_size": "10",
            "dataset.max_num_query": "2",
        },
        notes=(
            "The Average row is the mean of the ten sources' accuracies (600 test tasks each).",
            "ConML − plain is taken per seed (seed s against seed s) and then averaged, so its ± is a paired 95% CI over seeds.",
        ),
    )


TABLE_METADATASET = metadataset_table()
