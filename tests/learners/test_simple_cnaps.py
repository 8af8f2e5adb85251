"""Simple CNAPs: the Mahalanobis classifier, padded batches, psi, pretrained weights, and short runs ± ConML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError, DataError
from conml.learners.base import Adaptation
from conml.learners.simple_cnaps import SimpleCNAPs, fit_mahalanobis
from conml.objective import ConMLObjective, ConMLSettings
from conml.tables.table_sweep import preset_overrides, table_cells
from conml.task_kind import CLASSIFICATION
from tests.conftest import CONFIGS, compose_config
from tests.learner_settings import configured
from tests.metadataset_fixture import (
    IMAGE_SIZE,
    SOURCES,
    metadataset_cache,  # noqa: F401 - fixture
    metadataset_records,  # noqa: F401 - fixture
)
from tests.net_settings import configured_net

WIDTH = 8  # a narrow ResNet-18 and set encoder keep CPU runs short
NARROW = [f"model.width={WIDTH}", f"learner.set_encoder_width={WIDTH}"]
# One meta-batch of two tasks (ConML's d_out needs two), one validation and one test episode per set.
SHORT = [
    "trainer.steps=1",
    "trainer.meta_batch_size=2",
    "trainer.val_every=1",
    "trainer.val_episodes=1",
    "eval.episodes=1",
    "eval.batch_size=1",
]
# The cells of configs/table/metadataset.yaml, by run name.
METADATASET_PRESETS = sorted(cell.run_name for cell in table_cells("metadataset"))


def learner(width: int = WIDTH, **settings) -> SimpleCNAPs:
    torch.manual_seed(0)
    return configured(
        "simple_cnaps",
        configured_net("resnet18_film", width=width, pretrained=None, frozen=False),
        CLASSIFICATION,
        set_encoder_width=width,
        **settings,
    )


def random_tasks(tasks: int, ways: int, shots: int, generator: torch.Generator) -> Tasks:
    y = torch.arange(ways).repeat(shots).expand(tasks, -1).contiguous()
    return Tasks(torch.randn(tasks, ways * shots, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator), y)


def test_mahalanobis_matches_the_per_class_formula():
    g = torch.Generator().manual_seed(0)
    features, y = torch.randn(2, 12, 5, generator=g, dtype=torch.float64), torch.tensor([[0, 1, 2] * 4] * 2)
    query = torch.randn(2, 7, 5, generator=g, dtype=torch.float64)
    logits = fit_mahalanobis(features, y, None, 3).logits(query)
    for task in range(2):
        f = features[task]
        task_cov = torch.cov(f.T)
        for k in range(3):
            members = f[y[task] == k]
            mix = len(members) / (len(members) + 1)
            precision = torch.linalg.inv(
                mix * torch.cov(members.T) + (1 - mix) * task_cov + torch.eye(5, dtype=f.dtype)
            )
            diff = query[task] - members.mean(0)
            expected = -torch.einsum("md,de,me->m", diff, precision, diff)
            torch.testing.assert_close(logits[task, :, k], expected)


def test_padding_and_padded_ways_do_not_change_a_task():
    model = learner().eval()
    g = torch.Generator().manual_seed(1)
    small, large = random_tasks(1, 3, 2, g), random_tasks(1, 5, 2, g)
    query = torch.randn(2, 4, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    padded_x = torch.zeros(2, 10, 3, IMAGE_SIZE, IMAGE_SIZE)
    padded_x[0, :6], padded_x[1] = small.x[0], large.x[0]
    padded_y = torch.zeros(2, 10, dtype=torch.long)
    padded_y[0, :6], padded_y[1] = small.y[0], large.y[0]
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 6:] = False
    with torch.no_grad():
        together = model.predict(model.adapt(Tasks(padded_x, padded_y, mask), Adaptation.meta_test), query)
        alone = model.predict(model.adapt(small, Adaptation.meta_test), query[:1])
    torch.testing.assert_close(together[0, :, :3], alone[0], rtol=1e-4, atol=1e-4)
    assert torch.isinf(together[0, :, 3:]).all() and torch.isfinite(together[1]).all()


def test_psi_is_the_film_parameters_whatever_the_way():
    model = learner()
    g = torch.Generator().manual_seed(2)
    sizes = {
        model.represent(model.adapt(random_tasks(2, ways, 1, g), Adaptation.meta_train), None).shape for ways in (3, 5)
    }
    film_size = sum(4 * blocks * channels for channels, blocks in model.net.film_layout)
    assert sizes == {(2, film_size)}
    offset = configured("simple_cnaps", model.net, CLASSIFICATION, set_encoder_width=WIDTH, representation="offset")
    assert (
        offset.represent(offset.adapt(random_tasks(2, 3, 1, g), Adaptation.meta_train), None).abs().max() < 0.1
    )  # FiLM starts near the identity


def test_frozen_backbone_gets_no_gradient_but_film_does(tmp_path):
    path = tmp_path / "pretrained_resnet_meta_dataset.pt.tar"
    torch.save(
        {"state_dict": configured_net("resnet18_film", width=WIDTH, pretrained=None, frozen=False).state_dict()}, path
    )
    model = configured(
        "simple_cnaps",
        configured_net("resnet18_film", width=WIDTH, pretrained=str(path)),
        CLASSIFICATION,
        set_encoder_width=WIDTH,
    )
    g = torch.Generator().manual_seed(3)
    batch = EpisodeBatch(random_tasks(2, 3, 2, g), random_tasks(2, 3, 2, g))
    ConMLObjective(ConMLSettings())(model, batch).total.backward()
    assert all(p.grad is None for p in model.net.parameters())
    assert all(p.grad is not None for p in model.film.parameters())
    assert all(p.grad is not None for p in model.set_encoder.parameters())


def test_activation_checkpointing_gives_the_same_gradients():
    g = torch.Generator().manual_seed(4)
    batch = EpisodeBatch(random_tasks(2, 3, 2, g), random_tasks(2, 3, 1, g))
    grads = []
    for checkpointing in (False, True):
        model = learner()
        model.net.activation_checkpointing = checkpointing
        ConMLObjective(ConMLSettings())(model, batch).total.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.film.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_pretrained_weights_load_and_missing_ones_say_where_to_put_them(tmp_path):
    reference = configured_net("resnet18_film", width=WIDTH, pretrained=None, frozen=False)
    path = tmp_path / "pretrained_resnet_mini_imagenet.pt.tar"
    torch.save({"resnet_dict": reference.state_dict()}, path)
    loaded = configured_net("resnet18_film", width=WIDTH, pretrained=str(path))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), reference.state_dict().values()))
    assert not loaded.training and not loaded.train().training  # BatchNorm keeps the pretrained statistics
    with pytest.raises(DataError, match=r"not a CNAPs ResNet-18 checkpoint for width 16"):
        configured_net("resnet18_film", width=16, pretrained=str(path))
    missing = tmp_path / "pretrained" / "pretrained_resnet_tiered_imagenet.pt.tar"
    with pytest.raises(
        DataError,
        match=rf"put the file 'pretrained_resnet_tiered_imagenet.pt.tar' from the Simple CNAPs repository.*{missing}",
    ):
        configured_net("resnet18_film", pretrained=str(missing))
    with pytest.raises(ConfigError, match="model.frozen=true needs model.pretrained"):
        configured_net("resnet18_film", pretrained=None)


def metadataset_overrides(preset: str, cache: Path) -> list[str]:
    """The preset shrunk to the fixture: its three sources at 32 px, small episodes, a narrow network trained from scratch."""
    overrides = [
        *preset_overrides(preset),
        f"dataset.root={cache}",
        f"dataset.image_size={IMAGE_SIZE}",
        f"dataset.test_sources=[{','.join(SOURCES)}]",
        "dataset.min_ways=3",
        "dataset.max_ways=5",
        "dataset.train_max_ways=4",
        "dataset.max_num_query=3",
        "dataset.max_support_set_size=12",
        "dataset.train_max_support_set_size=10",
        "model.pretrained=null",
        "model.frozen=false",
        *NARROW,
        *SHORT,
    ]
    if not set(compose_config(preset_overrides(preset)).dataset.sources) <= set(SOURCES):
        overrides.append(f"dataset.sources=[{','.join(SOURCES)}]")
    return overrides


def test_the_metadataset_cells_are_found():
    """An empty list would skip the test below without failing."""
    assert len(METADATASET_PRESETS) == 4


@pytest.mark.parametrize("preset", METADATASET_PRESETS)
def test_metadataset_presets_train_a_few_steps(run_tiny, metadataset_cache, tmp_path, preset):
    overrides = metadataset_overrides(preset, metadataset_cache)
    keys = [f"{name}/accuracy" for name in SOURCES]
    if "ilsvrc" in preset:
        # These run as published: a frozen pretrained extractor, here on fixed-way fixed-shot episodes.
        path = tmp_path / "pretrained_resnet_meta_dataset.pt.tar"
        torch.save(
            {"state_dict": configured_net("resnet18_film", width=WIDTH, pretrained=None, frozen=False).state_dict()},
            path,
        )
        overrides = [o for o in overrides if not o.startswith(("model.pretrained", "model.frozen"))]
        overrides += [f"model.pretrained={path}", "dataset.ways=3", "dataset.shots=2", "dataset.queries=2"]
        keys = [f"{name}/accuracy@2shot" for name in SOURCES]
    summary, run_dir = run_tiny(overrides, name=preset)
    assert sorted(summary["test"]) == sorted(keys)
    assert all(0.0 <= result["mean"] <= 100.0 and result["count"] == 1 for result in summary["test"].values())
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [row for row in logged if "train/loss" in row]
    assert train and all(torch.isfinite(torch.tensor(row["train/loss"])) for row in train)
    assert any("train/d_out" in row for row in train) == preset.endswith("-conml")
