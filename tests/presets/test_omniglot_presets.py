"""Every cell of the Omniglot table pins its paper's settings, and each learner's cell meta-trains and
meta-tests on a small Omniglot prepared from the official layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conml.data.images import omniglot_runs
from conml.data.images.omniglot_prepare import prepare_omniglot
from conml.tables.table_sweep import preset_overrides, table_cells
from conml.train import run
from tests.conftest import TINY, compose_config
from tests.omniglot_fixture import write_official_zips

CELLS = sorted(c.run_name for c in table_cells("omniglot"))
TARGETS = {
    "maml": "conml.learners.maml.MAML",
    "fomaml": "conml.learners.maml.MAML",
    "reptile": "conml.learners.reptile.Reptile",
    "protonet": "conml.learners.protonet.ProtoNet",
    "matchingnet": "conml.learners.matchingnet.MatchingNet",
    "simple_cnaps": "conml.learners.simple_cnaps.SimpleCNAPs",
}
# Simple CNAPs' cells load the extractor pretrained on the fixture: tests/presets/test_omniglot_simple_cnaps.py.
CONV4_LEARNERS = [learner for learner in TARGETS if learner != "simple_cnaps"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("omniglot_data")
    prepare_omniglot(write_official_zips(root / "download"), root / "omniglot")
    return root


def test_the_table_has_every_learner_ways_shots_and_variant():
    assert len(CELLS) == 6 * 2 * 2 * 2
    assert "omniglot-maml-20way-5shot-conml" in CELLS and "omniglot-protonet-5way-1shot-plain" in CELLS
    assert "omniglot-simple_cnaps-20way-5shot-conml" in CELLS


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_pins_its_papers_settings(cell):
    _, learner, ways, shots, variant = cell.split("-")
    ways, shots = int(ways.removesuffix("way")), int(shots.removesuffix("shot"))
    cfg = compose_config(preset_overrides(cell))
    assert cfg.name == cell and cfg.dataset.name == "omniglot" and cfg.dataset.rotations == 4
    assert (cfg.dataset.ways, cfg.dataset.shots) == (ways, shots) and cfg.eval.episodes == 600
    # test queries per class as each paper's code draws them (BatchNorm uses the query batch's statistics)
    assert cfg.eval.queries == {"maml": shots, "fomaml": shots, "reptile": 1}.get(learner, 15)
    assert cfg.learner._target_ == TARGETS[learner] and cfg.conml.enabled == (variant == "conml")
    if learner == "simple_cnaps":  # configs/experiment/fewshot/simple_cnaps.yaml on the project's own extractor
        assert cfg.model.frozen and cfg.model.pretrained.endswith("/pretrained/omniglot_resnet18_film.pt")
        assert cfg.dataset.train_ways is None and cfg.dataset.queries == 10 and cfg.optimizer.lr == 0.0005
        assert (cfg.trainer.meta_batch_size, cfg.trainer.val_every, cfg.learner.film_l2) == (32, 250, 0.001)
        return
    assert cfg.model.in_channels == 1 and cfg.model.image_size == 28 and cfg.model.hidden == 64
    if learner in ("maml", "fomaml"):  # Finn et al. 2017
        assert cfg.learner.first_order == (learner == "fomaml") and cfg.learner.eval_inner_steps == 10
        assert (cfg.trainer.meta_batch_size, cfg.learner.inner_lr, cfg.learner.inner_steps) == (
            (32, 0.4, 1) if ways == 5 else (16, 0.1, 5)
        )
        assert cfg.model.stride == 2 and not cfg.model.max_pool and cfg.model.spatial_mean
        assert cfg.dataset.queries == shots and cfg.model.out_features == ways and cfg.optimizer.lr == 0.001
        assert cfg.trainer.steps == 60000
    if learner == "reptile":  # Nichol et al. 2018
        assert cfg.dataset.shots + cfg.dataset.train_queries == 10 and cfg.trainer.meta_batch_size == 5
        assert (cfg.learner.inner_steps, cfg.learner.inner_batch_size) == ((5, 10) if ways == 5 else (10, 20))
        assert cfg.trainer.steps == (100000 if ways == 5 else 200000) and cfg.learner.eval_inner_steps == 50
    if learner == "protonet":  # Snell et al. 2017
        assert cfg.dataset.train_ways == 60 and cfg.dataset.queries == 5 and cfg.model.get("max_pool", True)
    if learner == "matchingnet":  # Vinyals et al. 2016
        assert cfg.dataset.train_ways is None


def tiny(cell: str, data_dir: Path, *extra: str) -> list[str]:
    """`cell` shrunk to 2 steps of 2 tasks on the fixture, which has two drawings per character."""
    return [
        *TINY,
        *preset_overrides(cell),
        f"paths.data_dir={data_dir}",
        "trainer.steps=2",
        "trainer.meta_batch_size=2",
        "trainer.val_episodes=2",
        "eval.episodes=2",
        "eval.batch_size=2",
        "dataset.train_ways=null",
        "dataset.train_queries=null",
        "dataset.queries=1",
        "eval.queries=1",
        *extra,
    ]


@pytest.mark.parametrize("learner", CONV4_LEARNERS)
def test_each_learner_trains_and_tests_on_omniglot(learner, data_dir, tmp_path):
    inner = ["learner.eval_inner_steps=2"] if learner in ("maml", "fomaml", "reptile") else []
    summary = run(compose_config(tiny(f"omniglot-{learner}-5way-1shot-conml", data_dir, *inner)), tmp_path)
    assert summary["steps"] == 2 and (tmp_path / "results.json").exists()
    assert 0.0 <= summary["test"]["accuracy@1shot"]["mean"] <= 100.0


def tiny_protonet(data_dir: Path, run_dir: Path, scheme: str) -> Path:
    cell = "omniglot-protonet-20way-1shot-plain"
    run(
        compose_config(tiny(cell, data_dir, f"dataset.root={data_dir}/omniglot/{scheme}", "eval.checkpoint=last")),
        run_dir,
    )
    return run_dir


def test_a_run_on_lakes_split_is_tested_on_lakes_runs(data_dir, tmp_path, capsys):
    run_dir = tiny_protonet(data_dir, tmp_path / "run", "lake")
    omniglot_runs.main([str(run_dir), "--checkpoint", "last", "--out", str(tmp_path / "out")])
    result = json.loads((tmp_path / "out" / "lake_runs_last.json").read_text())
    assert len(result["per_run"]) == 20 and 0.0 <= result["error_rate"]["mean"] <= 100.0
    assert "error rate" in capsys.readouterr().out


def test_a_run_on_the_vinyals_split_is_refused_for_lakes_runs(data_dir, tmp_path, capsys):
    run_dir = tiny_protonet(data_dir, tmp_path / "run", "vinyals")
    with pytest.raises(SystemExit) as exit_:
        omniglot_runs.main([str(run_dir), "--checkpoint", "last", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2 and "Lake's split" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
