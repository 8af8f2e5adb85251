"""The N-way K-shot episode source: counts, label remapping, determinism, augmentation, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conml.data.images.miniimagenet import prepare_miniimagenet
from conml.data.images.sampler import EpisodeShape, draw_episode
from conml.data.images.source import FewShotImages
from conml.data.seeding import episode_rng
from conml.errors import ConfigError
from tests.dataset_settings import part
from tests.dataset_settings import source as configured
from tests.images_fixture import write_mini_pickles

CLASSES = {"train": 8, "val": 6, "test": 6}
PER_CLASS = 10
SIZE = 12


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mini")
    prepare_miniimagenet(write_mini_pickles(folder / "raw", CLASSES, PER_CLASS), folder / "cache", image_size=SIZE)
    return str(folder / "cache")


def source(root, *overrides: str, **settings) -> FewShotImages:
    """dataset=miniimagenet on the cache at `root`, 5-way 2-shot with 3 queries, read from the host (no preload)."""
    return configured(
        "miniimagenet", *overrides, **{"root": root, "ways": 5, "shots": 2, "queries": 3, "preload": False, **settings}
    )


def pixels(batch_x: torch.Tensor, data: FewShotImages) -> np.ndarray:
    """Episode images back in uint8 [..., S, S, 3]."""
    unnormalised = batch_x * data.std + data.mean
    return (unnormalised * 255).round().to(torch.uint8).movedim(-3, -1).numpy()


def class_of(images: np.ndarray, data: FewShotImages, split: str) -> list[int]:
    """The class of each image, found by looking the pixels up in the cache."""
    cache = data.splits[split]
    owner = np.repeat(np.arange(cache.num_classes), cache.counts)
    flat = cache.images.reshape(len(cache.images), -1)
    return [int(owner[np.flatnonzero((flat == image.reshape(-1)).all(1))[0]]) for image in images]


def test_episodes_have_the_right_classes_shots_and_remapped_labels(root):
    data = source(root)
    batch = data.sample("val", 0, 4)
    assert batch.support.x.shape == (4, 10, 3, SIZE, SIZE) and batch.query.x.shape == (4, 15, 3, SIZE, SIZE)
    assert batch.support.y.dtype == torch.int64
    drawn_for_label_0 = set()
    for task in range(4):
        assert torch.bincount(batch.support.y[task], minlength=5).tolist() == [2] * 5
        assert torch.bincount(batch.query.y[task], minlength=5).tolist() == [3] * 5
        images = np.concatenate([pixels(batch.support.x[task], data), pixels(batch.query.x[task], data)])
        labels = torch.cat([batch.support.y[task], batch.query.y[task]]).tolist()
        classes = class_of(images, data, "val")
        # Each label names one class, the same in support and query; five different classes.
        mapping = {label: {c for c, lab in zip(classes, labels) if lab == label} for label in range(5)}
        assert all(len(owners) == 1 for owners in mapping.values())
        assert len({next(iter(owners)) for owners in mapping.values()}) == 5
        assert len({image.tobytes() for image in images}) == len(images), "an image was drawn twice"
        drawn_for_label_0 |= mapping[0]
    assert len(drawn_for_label_0) > 1, "label 0 always names the same class: labels are not remapped per episode"


def test_support_and_query_are_shuffled(root):
    batch = source(root).sample("val", 0, 8)
    class_major = torch.arange(5).repeat_interleave(2)
    assert any(not torch.equal(batch.support.y[t], class_major) for t in range(8))


def test_task_i_is_the_same_whatever_the_batch(root):
    data = source(root)
    big, small = data.sample("test", 0, 6), data.sample("test", 3, 2)
    assert torch.equal(big.support.x[3:5], small.support.x) and torch.equal(big.query.y[3:5], small.query.y)
    again = source(root).sample("test", 3, 2)
    assert torch.equal(again.query.x, small.query.x)
    other_seed = source(root, seed=1).sample("test", 3, 2)
    assert not torch.equal(other_seed.support.x, small.support.x)
    other_split = data.sample("val", 3, 2)
    assert not torch.equal(other_split.support.x, small.support.x)


def test_preloaded_and_memory_mapped_episodes_agree(root):
    assert torch.equal(
        source(root, preload=True).sample("train", 2, 3).query.x,
        source(root, preload=False).sample("train", 2, 3).query.x,
    )


def test_train_settings_apply_to_the_train_split_only(root):
    data = source(root, train_ways=8, train_shots=1, train_queries=4)
    train = data.sample("train", 0, 2)
    assert train.support.y.shape == (2, 8) and train.query.y.shape == (2, 32)
    assert set(train.support.y[0].tolist()) == set(range(8))
    assert data.sample("val", 0, 2).support.y.shape == (2, 10)
    assert data.sample("test", 0, 2, shots=4, queries=1).query.y.shape == (2, 5)


def test_impossible_episodes_are_refused_with_the_reason(root):
    with pytest.raises(ConfigError, match="7-way episodes need 7 classes, but the split has 6"):
        source(root, ways=7)
    with pytest.raises(ConfigError, match="need 11 images of every class, but the smallest class has 10"):
        source(root, shots=1, queries=10)
    with pytest.raises(ConfigError, match="eval.shots"):
        source(root).sample("test", 0, 1, shots=8)


def test_draw_episode_is_a_function_of_its_generator():
    offsets, counts = np.array([0, 10, 25]), np.array([10, 15, 5])
    shape = EpisodeShape(ways=3, shots=2, queries=3)
    first, second = (draw_episode(episode_rng(0, "train", 7), offsets, counts, shape) for _ in range(2))
    assert np.array_equal(first.support, second.support) and np.array_equal(first.query_labels, second.query_labels)
    for label in range(3):
        members = np.concatenate(
            [first.support[first.support_labels == label], first.query[first.query_labels == label]]
        )
        owner = np.searchsorted(offsets, members, side="right") - 1
        assert len(set(owner)) == 1 and len(members) == 5


def test_augmentation_is_per_image_and_replayable(root):
    plain = source(root)
    augmented = source(root, "dataset/augmentation=lee2019", augmentation={"crop_padding": 2})
    a, b = augmented.sample("train", 0, 2), augmented.sample("train", 0, 2)
    assert torch.equal(a.support.x, b.support.x), "augmentation is not a function of the episode"
    assert not torch.equal(a.support.x, plain.sample("train", 0, 2).support.x)
    assert torch.equal(augmented.sample("val", 0, 2).support.x, plain.sample("val", 0, 2).support.x), (
        "only the train split is augmented"
    )


def test_crop_and_flip_read_the_right_pixels():
    images = torch.arange(2 * 4 * 4 * 3, dtype=torch.uint8).view(2, 4, 4, 3)
    augment = part(
        "miniimagenet",
        "augmentation",
        "dataset/augmentation=lee2019",
        crop_padding=1,
        flip=True,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
    )
    params = {"offsets": np.array([[0, 2], [1, 1]]), "flip": np.array([True, False]), "factors": np.ones((2, 3))}
    out = augment.apply(images, params).round().to(torch.uint8)
    padded = np.pad(images.numpy(), ((0, 0), (1, 1), (1, 1), (0, 0)))
    assert np.array_equal(out[0].numpy(), padded[0, 0:4, 2:6][:, ::-1])
    assert np.array_equal(out[1].numpy(), images[1].numpy())
