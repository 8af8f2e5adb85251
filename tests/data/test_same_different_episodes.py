"""Same-different episodes: balanced, seed-addressed, one support size per batch, cached = drawn."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from conml.data.episode_source import EpisodeSource
from conml.data.same_different.cache import VERSION, write_episodes
from conml.data.same_different.naturalistic import ObjectPairs
from conml.errors import ConfigError, DataError
from scripts.prepare_same_different import prepare
from tests import dataset_settings

FAST = ["lines", "arrows", "scrambled"]


def source(**settings) -> EpisodeSource:
    return episodes_of(**{"tasks": FAST, "episodes": [6, 3, 3], "block": 2, **settings})


def episodes_of(**settings) -> EpisodeSource:
    """dataset=same_different with `settings` changed."""
    return dataset_settings.source("same_different", **settings)


def test_supports_are_balanced_and_queries_are_one_same_one_different():
    batch = source().sample("train", 2, 2)  # the second block: support size 6
    assert batch.support.x.shape == (2, 6, 3, 128, 128) and batch.query.x.shape == (2, 2, 3, 128, 128)
    assert (batch.support.y.sum(1) == 3).all() and (batch.query.y.sum(1) == 1).all()
    assert batch.support.x.min() >= -1.0 and batch.support.x.max() == 1.0


def test_blocks_cycle_support_sizes_and_tasks_alternate_within_a_batch():
    episodes = source(block=3)
    sizes = [episodes.sample("train", first, 3).info["support_size"] for first in range(0, 24, 3)]
    assert sizes == [4, 6, 8, 10, 4, 6, 8, 10]
    assert episodes.sample("train", 0, 3).info["tasks"] == FAST
    assert episodes.sample("train", 12, 3).info["episodes"] == [1, 1, 1], "the next batch of S=4 continues the stream"


def test_an_episode_is_the_same_whatever_batch_it_is_drawn_in():
    a, b = source(), source()
    whole = a.sample("val", 0, 2)
    alone = b.sample("val", 1, 1)
    assert torch.equal(whole.support.x[1], alone.support.x[0]) and torch.equal(whole.query.y[1], alone.query.y[0])
    assert not torch.equal(whole.support.x[0], source(seed=1).sample("val", 0, 1).support.x[0])


def test_explicit_support_size_addresses_every_test_episode_of_every_task():
    episodes = source()
    batch = episodes.sample("test", 0, 9, shots=8)
    assert batch.support.x.shape[1] == 8
    assert batch.info["tasks"] == FAST * 3 and batch.info["episodes"] == [0] * 3 + [1] * 3 + [2] * 3


def test_each_test_task_is_its_own_test_set_with_the_same_episodes():
    episodes = source()
    sets = episodes.test_sets()
    assert list(sets) == FAST
    alone = sets["arrows"].sample("test", 1, 1, shots=4)
    assert alone.info["tasks"] == ["arrows"] and alone.info["episodes"] == [1]
    mixed = episodes.sample("test", 4, 1, shots=4)  # index 4: arrows, episode 1
    assert torch.equal(alone.support.x, mixed.support.x)


def test_a_batch_that_mixes_support_sizes_is_refused():
    with pytest.raises(ConfigError, match="eval.batch_size"):
        source().sample("val", 1, 2)


def test_leave_one_out_trains_on_the_others_and_tests_on_the_held_out_task():
    episodes = source(held_out="lines")
    assert set(episodes.sample("train", 0, 2).info["tasks"]) == {"arrows", "scrambled"}
    assert set(episodes.sample("val", 0, 2).info["tasks"]) == {"arrows", "scrambled"}
    assert set(episodes.sample("test", 0, 2, shots=4).info["tasks"]) == {"lines"}


@pytest.mark.parametrize(
    "settings",
    [
        {"tasks": ["triangles"]},
        {"held_out": "filled"},
        {"support_sizes": [5]},
        {"queries": 3},
        {"episodes": [1, 1]},
        {"tasks": ["naturalistic"]},
    ],
)
def test_bad_settings_are_refused_with_the_allowed_values(settings):
    with pytest.raises(ConfigError, match="dataset"):
        source(**settings)


def test_cached_episodes_are_the_drawn_ones(tmp_path):
    prepare(tmp_path, ["lines", "arrows"], [4], [3, 2, 2], workers=2)
    cached = episodes_of(
        tasks=["lines", "arrows"], support_sizes=[4], episodes=[3, 2, 2], root=str(tmp_path), cached=True
    )
    drawn = episodes_of(tasks=["lines", "arrows"], support_sizes=[4], episodes=[3, 2, 2])
    for split in ("train", "val", "test"):
        a, b = cached.sample(split, 0, 4), drawn.sample(split, 0, 4)
        assert torch.equal(a.support.x, b.support.x) and torch.equal(a.query.x, b.query.x)
        assert torch.equal(a.support.y, b.support.y) and torch.equal(a.query.y, b.query.y)


def test_missing_or_mismatched_cache_says_how_to_build_it(tmp_path):
    with pytest.raises(DataError, match="make data-same-different"):
        episodes_of(root=str(tmp_path), cached=True)
    prepare(tmp_path, ["lines"], [4], [1, 1, 1], workers=1)
    with pytest.raises(DataError, match="seed"):
        episodes_of(root=str(tmp_path), cached=True, seed=3)
    with pytest.raises(DataError, match="support4_train_images.npy"):
        episodes_of(tasks=["arrows"], root=str(tmp_path), cached=True).sample("train", 0, 1)


def test_a_cache_of_an_older_stimulus_version_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text(
        json.dumps({"seed": 0, "queries": 2})
    )  # unversioned: the old wider_line strokes
    old = f"stimuli of version 1, but this code draws version {VERSION}.*Delete that folder and rebuild it with `make data-same-different`"
    with pytest.raises(DataError, match=old):
        episodes_of(root=str(tmp_path), cached=True)
    with pytest.raises(DataError, match=old):
        prepare(tmp_path, ["lines"], [4], [1, 1, 1], workers=1)
    assert not (tmp_path / "lines").exists(), "nothing is added to an old cache"


def test_an_interrupted_or_short_cache_write_leaves_no_file(tmp_path):
    prepare(tmp_path, ["lines"], [4], [1, 1, 1], workers=1)  # the manifest
    one = (np.zeros((6, 128, 128, 3), np.uint8), np.zeros(6, np.uint8))

    def interrupted():
        yield one
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_episodes(tmp_path, "arrows", 4, "train", interrupted(), 3)
    with pytest.raises(DataError, match="Only 1 of 3 episodes"):
        write_episodes(tmp_path, "arrows", 4, "train", iter([one]), 3)
    assert not list((tmp_path / "arrows").rglob("*")), "neither a finished-looking file nor a .partial one is left"


def object_folder(path, count: int = 20):
    """Small photographs of distinct coloured objects on white, in the real (flat folder) layout."""
    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(count):
        image = Image.new("RGB", (64, 64), (255, 255, 255))
        box = [int(v) for v in rng.integers(4, 24, size=2)] + [int(v) for v in rng.integers(40, 60, size=2)]
        ImageDraw.Draw(image).ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 200, size=3)))
        image.save(path / f"object_{k:03d}.{'png' if k % 2 else 'jpg'}")
    return path


def test_naturalistic_pairs_come_from_disjoint_object_pools(tmp_path):
    folder = object_folder(tmp_path / "objects")
    pools = ObjectPairs(folder).pools
    assert sum(len(p) for p in pools.values()) == 20
    assert not set(pools["train"]) & set(pools["test"]) and not set(pools["val"]) & set(pools["test"])
    make = lambda: episodes_of(tasks=["naturalistic"], episodes=[4, 2, 2], objects_root=str(folder))  # noqa: E731
    batch = make().sample("test", 0, 2, shots=4)
    assert batch.support.x.shape == (2, 4, 3, 128, 128) and (batch.support.y.sum(1) == 2).all()
    assert torch.equal(make().sample("test", 0, 2, shots=4).support.x, batch.support.x)


def test_missing_object_folder_names_the_layout(tmp_path):
    with pytest.raises(DataError, match="does not exist.*<object>.jpg"):
        episodes_of(tasks=["naturalistic"], objects_root=str(tmp_path / "nowhere"))
