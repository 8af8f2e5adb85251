"""Simple CNAPs on Omniglot end to end on the fixture: the extractor is pretrained by its protocol,
exported as a file the FiLM ResNet-18 loader takes unchanged, and the table's cells train plain and with
ConML from it; without the file, the cell stops with one paragraph naming the commands that make it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conml.build import build
from conml.checkpoint import load_checkpoint
from conml.data.images.omniglot_prepare import prepare_omniglot
from conml.errors import DataError
from conml.nets import export_extractor
from conml.nets.resnet18 import FilmResNet18
from conml.tables.table_sweep import preset_overrides
from conml.train import run
from tests.conftest import TINY, compose_config
from tests.learners.test_simple_cnaps import NARROW, WIDTH
from tests.net_settings import configured_net
from tests.omniglot_fixture import write_official_zips
from tests.presets.test_omniglot_presets import tiny

FILE = "omniglot_resnet18_film.pt"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("omniglot_data")
    prepare_omniglot(write_official_zips(root / "download"), root / "omniglot")
    return root


@pytest.fixture(scope="module")
def pretrained_run(data_dir, tmp_path_factory) -> Path:
    """Two steps of the pretraining protocol, narrowed, on the fixture (two drawings per character)."""
    run_dir = tmp_path_factory.mktemp("pretrain")
    overrides = [*TINY, "experiment=omniglot/pretrain_resnet18_film", f"paths.data_dir={data_dir}"]
    shrink = ["trainer.steps=2", "trainer.meta_batch_size=2", "trainer.val_episodes=2", "eval.episodes=2"]
    episodes = ["dataset.train_ways=null", "dataset.queries=1", "eval.queries=1", f"model.width={WIDTH}"]
    summary = run(compose_config([*overrides, *shrink, *episodes]), run_dir)
    assert summary["steps"] == 2 and 0.0 <= summary["test"]["accuracy@1shot"]["mean"] <= 100.0
    return run_dir


def test_the_pretraining_protocol_trains_the_resnet18_film_from_scratch_as_a_prototypical_network():
    cfg = compose_config(["experiment=omniglot/pretrain_resnet18_film"])
    assert cfg.name == "omniglot-resnet18_film-pretrain" and cfg.dataset.name == "omniglot"
    assert cfg.model._target_ == "conml.nets.resnet18.FilmResNet18" and cfg.model.width == 64
    assert cfg.model.pretrained is None and not cfg.model.frozen and not cfg.conml.enabled
    assert cfg.learner._target_ == "conml.learners.protonet.ProtoNet" and cfg.dataset.rotations == 4
    assert (cfg.dataset.train_ways, cfg.dataset.queries, cfg.trainer.val_every) == (60, 5, 250)


def test_the_export_is_a_file_the_loader_takes_with_the_runs_extractor_weights(pretrained_run, tmp_path, capsys):
    out = tmp_path / FILE
    export_extractor.main([str(pretrained_run), str(out), "--checkpoint", "last"])
    assert str(out) in capsys.readouterr().out
    learner = load_checkpoint(pretrained_run / "checkpoints" / "last.pt")["learner"]
    loaded = configured_net("resnet18_film", width=WIDTH, pretrained=str(out), frozen=True).state_dict()
    assert (
        loaded.keys() == configured_net("resnet18_film", width=WIDTH, pretrained=None, frozen=False).state_dict().keys()
    )
    assert all(torch.equal(tensor, learner[f"net.{key}"]) for key, tensor in loaded.items())
    assert not all(
        torch.equal(
            tensor, configured_net("resnet18_film", width=WIDTH, pretrained=None, frozen=False).state_dict()[key]
        )
        for key, tensor in loaded.items()
    )


def test_a_run_without_a_film_resnet18_is_refused_in_one_paragraph(data_dir, tmp_path, capsys):
    run_dir = tmp_path / "protonet"
    run(compose_config(tiny("omniglot-protonet-5way-1shot-plain", data_dir, "eval.checkpoint=last")), run_dir)
    with pytest.raises(SystemExit) as refused:
        export_extractor.main([str(run_dir), str(tmp_path / FILE), "--checkpoint", "last"])
    error = capsys.readouterr().err.strip()
    assert refused.value.code == 2 and "holds no FiLM ResNet-18" in error and "\n" not in error
    assert not (tmp_path / FILE).exists()


@pytest.mark.parametrize("variant", ["plain", "conml"])
def test_each_simple_cnaps_cell_trains_from_the_exported_extractor(variant, pretrained_run, data_dir, tmp_path):
    export_extractor.export(pretrained_run, data_dir / "pretrained" / FILE, "last")
    cfg = compose_config(tiny(f"omniglot-simple_cnaps-5way-1shot-{variant}", data_dir, *NARROW))
    assert cfg.model.pretrained == str(data_dir / "pretrained" / FILE) and cfg.model.frozen
    summary = run(cfg, tmp_path)
    assert summary["steps"] == 2 and 0.0 <= summary["test"]["accuracy@1shot"]["mean"] <= 100.0
    assert (summary["conml_grad_share_measurements"] > 0) == (variant == "conml")


def test_without_the_exported_file_the_cell_names_the_commands_that_make_it(tmp_path):
    cfg = compose_config([*preset_overrides("omniglot-simple_cnaps-5way-1shot-plain"), f"paths.data_dir={tmp_path}"])
    with pytest.raises(DataError) as missing:
        build(cfg.model)
    message = str(missing.value)
    assert "\n" not in message and str(tmp_path / "pretrained" / FILE) in message
    assert "experiment=omniglot/pretrain_resnet18_film" in message and "conml.nets.export_extractor" in message
