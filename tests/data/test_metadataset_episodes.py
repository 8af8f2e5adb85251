"""Meta-Dataset episodes: the spec's way/shot bounds, the class splits, the ontologies, fixed test sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conml.data.metadataset.cache import SourceCache
from conml.data.metadataset.sampler import MAX_SPANNING_LEAVES_ELIGIBLE
from conml.data.metadataset.source import MetaDataset
from conml.errors import DataError
from tests.dataset_settings import source as configured
from tests.metadataset_fixture import (
    IMAGE_SIZE,
    SOURCES,
    metadataset_cache,  # noqa: F401 - fixture
    metadataset_records,  # noqa: F401 - fixture
)

# Small enough for the fixture's splits (5 to 8 classes each), large enough to vary.
BOUNDS = dict(min_ways=3, max_ways=6, max_num_query=3, max_support_set_size=14, max_support_size_contrib_per_class=4)


def dataset(root, **settings) -> MetaDataset:
    """dataset=metadataset on the fixture's cache: its sources, tested on them (test_sources=null), the BOUNDS."""
    return configured(
        "metadataset",
        **{
            "root": str(root),
            "sources": list(SOURCES),
            "test_sources": None,
            "image_size": IMAGE_SIZE,
            "seed": 3,
            **BOUNDS,
            **settings,
        },
    )


def cache_rows(cache: SourceCache) -> dict[bytes, int]:
    """Each cached image's bytes -> its class (the fixture's images are all distinct)."""
    owner = np.empty(len(cache.images), dtype=np.int64)
    for klass, start in cache.starts.items():
        owner[start : start + cache.counts[klass]] = klass
    return {cache.images[row].tobytes(): int(owner[row]) for row in range(len(owner))}


def classes_of(x: torch.Tensor, rows: dict[bytes, int]) -> list[int]:
    pixels = ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [rows[p.tobytes()] for p in pixels]


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_episodes_respect_bounds_and_splits(metadataset_cache, split):
    source = dataset(metadataset_cache)
    rows = {name: cache_rows(cache) for name, cache in source.caches.items()}
    batch = source.sample(split, 0, 24)
    assert batch.support.mask is not None and batch.query.mask is not None
    for task in range(batch.num_tasks):
        name, ways = batch.info["sources"][task], int(batch.info["ways"][task])
        cache = source.caches[name]
        s_mask, q_mask = batch.support.mask[task], batch.query.mask[task]
        s_y, q_y = batch.support.y[task][s_mask], batch.query.y[task][q_mask]
        s_class = classes_of(batch.support.x[task][s_mask], rows[name])
        q_class = classes_of(batch.query.x[task][q_mask], rows[name])
        assert BOUNDS["min_ways"] <= ways <= BOUNDS["max_ways"]
        # Labels 0..ways-1 each name exactly one class of this split, the same in support and query.
        label_to_class = dict(zip(s_y.tolist(), s_class))
        assert sorted(label_to_class) == list(range(ways))
        assert len(set(label_to_class.values())) == ways
        assert set(label_to_class.values()) <= set(cache.split_classes[split])
        assert all(label_to_class[y] == c for y, c in zip(q_y.tolist(), q_class))
        assert all(label_to_class[y] == c for y, c in zip(s_y.tolist(), s_class))
        # Support: at least one per class, at most max_support_set_size in all (the contribution cap
        # bounds the size, not a class); query: the same count for every class, at most max_num_query.
        shots = torch.bincount(s_y, minlength=ways)
        queries = torch.bincount(q_y, minlength=ways)
        assert shots.min() >= 1 and shots.sum() <= BOUNDS["max_support_set_size"]
        assert queries.min() == queries.max() <= BOUNDS["max_num_query"]
        for label, klass in label_to_class.items():
            assert shots[label] + queries[label] <= cache.counts[klass]
        # No image is both a support and a query example.
        support_pixels = {p.tobytes() for p in batch.support.x[task][s_mask].numpy()}
        assert not support_pixels & {p.tobytes() for p in batch.query.x[task][q_mask].numpy()}


def test_default_bounds_give_five_or_more_ways(metadataset_cache):
    source = configured(
        "metadataset", root=str(metadataset_cache), sources=["aircraft"], test_sources=None, image_size=IMAGE_SIZE
    )
    ways = source.sample("train", 0, 30).info["ways"]
    assert ways.min() >= 5 and ways.max() <= 7  # aircraft has 7 training classes
    assert len(set(ways.tolist())) > 1


def test_ontologies_choose_related_classes(metadataset_cache):
    source = dataset(metadataset_cache)
    for name in ("omniglot", "ilsvrc_2012"):
        cache = source.caches[name]
        rows = cache_rows(cache)
        batch = source.sample_from((name,), "train", 0, 12, None, None)
        eligible = [
            set(g) for g in cache.groups["train"] if BOUNDS["min_ways"] <= len(g) <= MAX_SPANNING_LEAVES_ELIGIBLE
        ]
        for task in range(batch.num_tasks):
            chosen = set(classes_of(batch.support.x[task][batch.support.mask[task]], rows))
            assert any(chosen <= group for group in eligible), (name, chosen)


def test_fixed_way_fixed_shot_episodes_need_no_padding(metadataset_cache):
    source = dataset(metadataset_cache, ways=3, shots=2, queries=2)
    batch = source.sample("test", 0, 5)
    assert batch.support.mask is None and batch.query.mask is None
    assert batch.support.x.shape == (5, 6, 3, IMAGE_SIZE, IMAGE_SIZE) and batch.query.x.shape[1] == 6
    for y in batch.support.y:
        assert torch.bincount(y).tolist() == [2, 2, 2]
    assert batch.support.x.min() >= -1 and batch.support.x.max() <= 1


def test_eval_shots_override_fixes_the_support_size(metadataset_cache):
    batch = dataset(metadataset_cache).sample("test", 0, 4, shots=1)
    for y, mask, ways in zip(batch.support.y, batch.support.mask, batch.info["ways"]):
        assert torch.bincount(y[mask]).tolist() == [1] * int(ways)


def test_episodes_are_pure_functions_of_seed_split_and_index(metadataset_cache):
    source = dataset(metadataset_cache)
    batch = source.sample("val", 0, 6)
    alone = source.sample("val", 4, 1)
    n = int(batch.support.mask[4].sum())
    assert torch.equal(batch.support.x[4, :n], alone.support.x[0, :n])
    assert torch.equal(
        batch.query.y[4][batch.query.mask[4]],
        alone.query.y[0][alone.query.mask[0]] if alone.query.mask is not None else alone.query.y[0],
    )
    other = dataset(metadataset_cache, seed=4).sample("val", 4, 1)
    assert not torch.equal(other.support.x, alone.support.x)


def test_test_sets_are_per_source_and_fixed(metadataset_cache):
    source = dataset(metadataset_cache)
    sets = source.test_sets()
    assert list(sets) == SOURCES
    first = sets["omniglot"].sample("test", 0, 3)
    assert first.info["sources"] == ["omniglot"] * 3
    assert torch.equal(first.support.x, sets["omniglot"].sample("test", 0, 3).support.x)


def test_too_few_classes_for_fixed_ways_is_a_clear_error(metadataset_cache):
    source = dataset(metadataset_cache, ways=9, shots=1, queries=1)
    with pytest.raises(DataError, match="9-way episodes need 9 classes"):
        source.sample("val", 0, 1)
