"""Every cell of the Table 3 / Table 4 sweeps: it pins its paper cell, and it meta-trains and meta-tests on a tiny
prepared miniImageNet / tieredImageNet (real download formats, cached at 16x16, Conv-4 of width 4)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from conml.tables.table_sweep import preset_overrides, table_cells
from conml.train import run
from tests.conftest import TINY, compose_config
from tests.images_fixture import prepared_datasets

SIZE = 16
LEARNER_TARGETS = {
    "maml": "conml.learners.maml.MAML",
    "fomaml": "conml.learners.maml.MAML",
    "reptile": "conml.learners.reptile.Reptile",
    "protonet": "conml.learners.protonet.ProtoNet",
    "matchingnet": "conml.learners.matchingnet.MatchingNet",
}
# The Conv-4 learners' cells of Tables 3 and 4, by run name (the Simple CNAPs rows are tested with Simple CNAPs).
PRESETS = sorted(c.run_name for t in ("table3", "table4") for c in table_cells(t) if c.protocol in LEARNER_TARGETS)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return prepared_datasets(tmp_path_factory.mktemp("images"), SIZE)


def test_every_cell_of_tables_3_and_4_is_in_their_sweeps():
    cells = itertools.product(["miniimagenet", "tieredimagenet"], LEARNER_TARGETS, (1, 5), ("plain", "conml"))
    assert PRESETS == sorted(f"{dataset}-{learner}-{shots}shot-{variant}" for dataset, learner, shots, variant in cells)


def check_cell(preset: str, cfg) -> None:
    """The settings that make `preset` its paper cell (those the tiny run does not shrink)."""
    dataset, learner, shots, variant = preset.split("-")
    assert cfg.name == preset and cfg.dataset.name == dataset and f"{cfg.dataset.shots}shot" == shots
    assert cfg.dataset.ways == 5 and cfg.eval.queries == 15
    assert cfg.learner._target_ == LEARNER_TARGETS[learner]
    assert cfg.conml.enabled == (variant == "conml") and cfg.conml.lam == 0.1
    if learner in ("maml", "fomaml"):
        assert cfg.learner.first_order == (learner == "fomaml") and cfg.learner.inner_lr == 0.5
        assert cfg.dataset.queries == cfg.dataset.shots and cfg.model.out_features == 5
    if learner == "reptile":
        assert cfg.dataset.shots + cfg.dataset.train_queries == 15 and cfg.optimizer._target_ == "torch.optim.SGD"
    if learner == "protonet":
        assert cfg.dataset.train_ways == (30 if shots == "1shot" else 20)


@pytest.mark.parametrize("learner", LEARNER_TARGETS)
def test_learner_recipe_sizes(learner):
    cfg = compose_config([*preset_overrides(f"miniimagenet-{learner}-1shot-conml")])
    assert cfg.trainer.meta_batch_size == 32, "ConML's image experiments use 32 tasks per meta-batch"
    assert cfg.model.hidden == (64 if learner in ("protonet", "matchingnet") else 32), (
        "Conv-4 width of the learner's original setting"
    )


def tiny_run(preset: str, data_dir: Path, run_dir: Path, extra: tuple[str, ...] = ("model.hidden=4",)):
    """Compose `preset` shrunk to 2 steps of 2 tasks on the tiny data, check its cell, run it."""
    overrides = [
        *TINY,
        *preset_overrides(preset),
        f"paths.data_dir={data_dir}",
        f"model.image_size={SIZE}",
        "trainer.steps=2",
        "trainer.meta_batch_size=2",
        "trainer.val_episodes=2",
        "eval.episodes=2",
        "eval.batch_size=2",
        *extra,
    ]
    if "-reptile-" in preset:
        overrides.append("learner.eval_inner_steps=2")
    cfg = compose_config(overrides)
    check_cell(preset, cfg)
    summary = run(cfg, run_dir)
    shots = preset.split("-")[2]
    assert summary["steps"] == 2 and (run_dir / "results.json").exists()
    assert list(summary["test"]) == [f"accuracy@{shots}"]
    assert 0.0 <= summary["test"][f"accuracy@{shots}"]["mean"] <= 100.0


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_meta_trains_and_meta_tests(preset, data_dir, tmp_path):
    tiny_run(preset, data_dir, tmp_path)


@pytest.mark.parametrize(
    "preset, extra",
    [
        ("miniimagenet-maml-1shot-conml", ("model=resnet12", "model.channels=[4,4]")),
        ("tieredimagenet-protonet-5shot-conml", ("model=resnet12", "model.channels=[4,4]")),
        (
            "tieredimagenet-protonet-1shot-conml",
            ("model.hidden=4", "dataset/augmentation=lee2019", "dataset.preload=false"),
        ),
    ],
    ids=["maml-resnet12", "protonet-resnet12", "protonet-augmented-memory-mapped"],
)
def test_backbone_and_data_variants_run(preset, extra, data_dir, tmp_path):
    tiny_run(preset, data_dir, tmp_path, extra)


def test_model_for_another_image_size_is_refused_at_start_up(data_dir, tmp_path):
    """The cache holds 16x16 images; a Conv-4 head sized for 84x84 inputs is stopped before training."""
    from conml.errors import ConfigError

    overrides = [
        *TINY,
        *preset_overrides("miniimagenet-maml-1shot-conml"),
        f"paths.data_dir={data_dir}",
        "model.hidden=4",
    ]
    with pytest.raises(ConfigError, match="model.image_size") as error:
        run(compose_config(overrides), tmp_path)
    assert f"{SIZE}, {SIZE})" in str(error.value)


PSI_OPTIONS = [
    ("miniimagenet-protonet-1shot-conml", "learner.representation=centred"),
    ("miniimagenet-matchingnet-1shot-conml", "learner.representation=centred"),
    ("miniimagenet-protonet-1shot-conml", "conml.centring=meta_batch"),
    ("miniimagenet-maml-1shot-conml", "learner.representation=update"),
    ("miniimagenet-maml-1shot-conml", "conml.centring=meta_batch"),
    ("miniimagenet-fomaml-1shot-conml", "learner.representation=update"),
    ("miniimagenet-reptile-1shot-conml", "learner.representation=update"),
]


@pytest.mark.parametrize("preset, option", PSI_OPTIONS, ids=[f"{p.split('-')[1]}-{o}" for p, o in PSI_OPTIONS])
def test_every_psi_option_trains_two_steps(preset, option, data_dir, tmp_path):
    tiny_run(preset, data_dir, tmp_path, ("model.hidden=4", option, "trainer.grad_share_every=1"))


@pytest.mark.parametrize(
    "preset, extra, expected",
    [
        # Conv-4 without a head: its embedding (4 wide at hidden=4, 16x16) taken as 4 class scores for 5 ways.
        ("miniimagenet-maml-1shot-conml", ("model.out_features=null",), ["has 4 outputs", "dataset.ways=5"]),
        (
            "miniimagenet-reptile-1shot-conml",
            ("model.out_features=800",),
            ["has 800 outputs", "model.out_features=800"],
        ),
        (
            "miniimagenet-protonet-1shot-conml",
            ("dataset.ways=1", "dataset.train_ways=null"),
            ["dataset.ways=1", "at least 2"],
        ),
        ("miniimagenet-protonet-1shot-conml", ("dataset.train_ways=1",), ["dataset.train_ways=1", "at least 2"]),
    ],
    ids=["maml-no-head", "reptile-800-outputs", "one-way", "one-way-training"],
)
def test_a_classifier_that_does_not_fit_the_ways_is_refused_at_start_up(preset, extra, expected, data_dir, tmp_path):
    from conml.errors import ConfigError

    overrides = [
        *TINY,
        *preset_overrides(preset),
        f"paths.data_dir={data_dir}",
        f"model.image_size={SIZE}",
        "model.hidden=4",
    ]
    with pytest.raises(ConfigError) as error:
        run(compose_config([*overrides, *extra]), tmp_path)
    for text in expected:
        assert text in str(error.value)
    if "outputs" in expected[0]:
        assert "model.out_features=${dataset.ways}" in str(error.value)
    assert not (tmp_path / "checkpoints").exists()
