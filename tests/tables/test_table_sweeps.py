"""Tables as sweeps (configs/table/): every cell composes, is named as the aggregation looks it up,
and the file drives `python -m conml.train -m +table=<table>` with the axes the table reads."""

from __future__ import annotations

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError

from conml.config import register
from conml.tables.table_sweep import TABLE_CONFIGS, every_sweep_cell, preset_overrides, table_axes, table_cells
from tests.conftest import CONFIGS, compose_config

TABLES = sorted(path.stem for path in TABLE_CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize("table", TABLES)
def test_every_cell_composes_under_the_name_the_table_looks_up(table):
    cells = table_cells(table)
    assert cells and len({(c.run_name, c.where) for c in cells}) == len(cells)
    for cell in cells:
        cfg = compose_config(list(cell.overrides))
        assert cfg.name == cell.run_name
        assert "_target_" in cfg.dataset and "_target_" in cfg.learner
        for key, value in (override.split("=", 1) for override in cell.overrides):
            if "." in key:  # a setting (groups are checked by the run name); 1 and 1.0 are one lambda
                selected = OmegaConf.select(cfg, key)
                assert str(selected) == value or selected == yaml.safe_load(value)
            if key == "conml":
                assert cfg.conml.enabled == (value != "off")


@pytest.mark.parametrize("table", TABLES)
def test_the_table_file_is_the_multirun_the_table_reads(table):
    register()
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[f"+table={table}"], return_hydra_config=True)
    params = {key: [v.strip() for v in str(values).split(",")] for key, values in cfg.hydra.sweeper.params.items()}
    assert params == table_axes(table) and "seed" in params


def test_a_cell_name_gives_its_overrides_and_a_preset_name_its_file():
    cell = every_sweep_cell()["tieredimagenet-protonet-5shot-plain"]
    assert (
        preset_overrides(cell.run_name)
        == list(cell.overrides)
        == [
            "dataset=tieredimagenet",
            "experiment=fewshot/protonet",
            "dataset.shots=5",
            "conml=off",
        ]
    )
    assert preset_overrides("samediff_loo_conv6_fomaml") == [
        "experiment=samediff_loo_conv6_fomaml",
        "dataset.held_out=regular",
    ], "the first leave-one-out cell: the runs of one name differ by their `where` settings"
    assert preset_overrides("metadataset_ilsvrc-simple_cnaps-conml") == [
        "dataset=metadataset_ilsvrc",
        "experiment=metadataset/simple_cnaps",
        "conml=on",
    ]


def test_a_shot_count_the_protocol_does_not_know_is_a_clear_error():
    cfg = compose_config(["dataset=miniimagenet", "experiment=fewshot/protonet", "dataset.shots=10"])
    with pytest.raises(InterpolationResolutionError, match=r"No value for 10 among \[1, 5\].*explicitly"):
        cfg.dataset.train_ways  # noqa: B018 - resolving is the test
    assert (
        compose_config(["experiment=fewshot/protonet", "dataset.shots=10", "dataset.train_ways=40"]).dataset.train_ways
        == 40
    )
