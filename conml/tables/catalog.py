"""Every paper table `scripts/table.py` can re-run, by the name its make target and output files use."""

from __future__ import annotations

from conml.tables.images import TABLE3, TABLE4
from conml.tables.metadataset import TABLE_METADATASET
from conml.tables.omniglot import TABLE_OMNIGLOT
from conml.tables.samediff import TABLE_A1_SPEC, TABLE_B1_SPEC, TABLE_LOO_SPEC
from conml.tables.spec import Table
from conml.tables.table2 import LAMBDA_TABLE as TABLE2_LAMBDA
from conml.tables.table2 import TABLE as TABLE2
from conml.tables.table5 import TABLE5, TABLE5_PAPER

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        TABLE2,
        TABLE2_LAMBDA,
        TABLE3,
        TABLE4,
        TABLE5,
        TABLE5_PAPER,
        TABLE_A1_SPEC,
        TABLE_B1_SPEC,
        TABLE_LOO_SPEC,
        TABLE_OMNIGLOT,
        TABLE_METADATASET,
    )
}
