"""The Simple CNAPs cells of Tables 3 and 4: each cell of their sweeps pins its paper setting and trains ± ConML a
step on a tiny prepared miniImageNet / tieredImageNet (real download formats, cached at 32 px, the
smallest the set encoder takes), with a narrow ResNet-18 trained from scratch or loaded frozen."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from conml.tables.table_sweep import preset_overrides, table_cells
from conml.train import run
from tests.conftest import TINY, compose_config
from tests.images_fixture import prepared_datasets
from tests.learners.test_simple_cnaps import NARROW, SHORT, WIDTH
from tests.net_settings import configured_net

PRESETS = sorted(c.run_name for t in ("table3", "table4") for c in table_cells(t) if c.protocol == "simple_cnaps")
CHECKPOINTS = {
    "miniimagenet": "pretrained_resnet_mini_imagenet.pt.tar",
    "tieredimagenet": "pretrained_resnet_tiered_imagenet.pt.tar",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    data = prepared_datasets(tmp_path_factory.mktemp("images"), 32)
    (data / "pretrained").mkdir()
    for name in CHECKPOINTS.values():
        torch.save(
            {"resnet_dict": configured_net("resnet18_film", width=WIDTH, pretrained=None, frozen=False).state_dict()},
            data / "pretrained" / name,
        )
    return data


def test_every_simple_cnaps_cell_of_tables_3_and_4_is_in_their_sweeps():
    cells = itertools.product(["miniimagenet", "tieredimagenet"], (1, 5), ("plain", "conml"))
    assert PRESETS == sorted(f"{dataset}-simple_cnaps-{shots}shot-{variant}" for dataset, shots, variant in cells)


@pytest.mark.parametrize("preset", PRESETS)
def test_simple_cnaps_cell_pins_its_setting_and_trains(preset, data_dir, tmp_path):
    dataset, _, shots, variant = preset.split("-")
    published = compose_config(preset_overrides(preset))
    assert published.name == preset and published.dataset.name == dataset and f"{published.dataset.shots}shot" == shots
    assert published.dataset.ways == 5 and published.dataset.queries == 10 and published.eval.queries == 10
    assert (
        published.learner._target_ == "conml.learners.simple_cnaps.SimpleCNAPs" and published.learner.film_l2 == 0.001
    )
    assert published.optimizer.lr == 0.0005 and published.trainer.meta_batch_size == 32
    assert published.model.frozen and published.model.pretrained.endswith(CHECKPOINTS[dataset])
    assert published.conml.enabled == (variant == "conml") and published.conml.lam == 0.1

    # Cells without ConML load the (stand-in) pretrained checkpoint frozen; ConML cells train the network from scratch.
    scratch = ["model.pretrained=null", "model.frozen=false"] if variant == "conml" else []
    cfg = compose_config([*TINY, *preset_overrides(preset), f"paths.data_dir={data_dir}", *NARROW, *SHORT, *scratch])
    summary = run(cfg, tmp_path)
    assert summary["steps"] == 1 and list(summary["test"]) == [f"accuracy@{shots}"]
    assert 0.0 <= summary["test"][f"accuracy@{shots}"]["mean"] <= 100.0


@pytest.mark.parametrize("option", ["learner.representation=offset", "conml.centring=meta_batch"])
def test_every_psi_option_of_simple_cnaps_trains(option, data_dir, tmp_path):
    cfg = compose_config(
        [
            *TINY,
            *preset_overrides("miniimagenet-simple_cnaps-1shot-conml"),
            f"paths.data_dir={data_dir}",
            *NARROW,
            *SHORT,
            "model.pretrained=null",
            "model.frozen=false",
            option,
        ]
    )
    summary = run(cfg, tmp_path)
    assert summary["steps"] == 1 and summary["conml_grad_share_measurements"] == 1
