"""Reading converted Meta-Dataset records: specs of all three kinds, the cache, and bad files named by offset."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conml.data.metadataset.cache import SourceCache, build_cache
from conml.data.metadataset.records import FRAMING_BYTES, index_records, read_class_images
from conml.data.metadataset.spec import check_official_splits, load_spec
from conml.errors import DataError
from tests.dataset_settings import source as configured
from tests.metadataset_fixture import (
    AIRCRAFT_CLASSES,
    IMAGE_SIZE,
    OMNIGLOT_CHARACTERS,
    metadataset_cache,  # noqa: F401 - fixture
    metadataset_records,  # noqa: F401 - fixture
    write_official_splits,
)


def test_flat_spec_gives_contiguous_splits(metadataset_records):
    spec = load_spec(metadataset_records / "aircraft")
    train, val, test = AIRCRAFT_CLASSES["TRAIN"], AIRCRAFT_CLASSES["VALID"], AIRCRAFT_CLASSES["TEST"]
    assert spec.split_classes == {
        "train": tuple(range(train)),
        "val": tuple(range(train, train + val)),
        "test": tuple(range(train + val, train + val + test)),
    }
    assert spec.ontology == "none"


def test_bilevel_spec_groups_characters_by_alphabet(metadataset_records):
    spec = load_spec(metadataset_records / "omniglot")
    assert [len(g) for g in spec.groups["train"]] == OMNIGLOT_CHARACTERS[:2]
    assert spec.groups["val"] == (tuple(range(11, 16)),)
    assert spec.split_classes["test"] == tuple(range(16, 21))


def test_hierarchical_spec_spans_leaves_of_each_node(metadataset_records):
    spec = load_spec(metadataset_records / "ilsvrc_2012")
    assert spec.split_classes["train"] == tuple(range(8))
    # n01 spans five leaves, n02 four (n14 has two parents), the root all eight.
    assert sorted(len(g) for g in spec.groups["train"]) == [4, 5, 8]
    assert spec.split_classes["test"] == tuple(range(13, 18))
    assert all(spec.images_per_class[c] > 0 for c in spec.classes)


def test_cache_holds_every_image_of_every_class(metadataset_records, metadataset_cache):
    spec = load_spec(metadataset_records / "aircraft")
    cache = SourceCache.open(metadataset_cache, "aircraft", IMAGE_SIZE)
    assert cache.images.shape == (sum(spec.images_per_class.values()), IMAGE_SIZE, IMAGE_SIZE, 3)
    assert cache.counts == spec.images_per_class
    assert cache.split_classes == spec.split_classes
    # Each class has one colour: a class's cached images are closer to each other than to another class.
    means = {
        c: cache.images[cache.starts[c] : cache.starts[c] + n].reshape(n, -1, 3).mean(1)
        for c, n in cache.counts.items()
    }
    spread = np.mean([m.std(0).mean() for m in means.values()])
    between = np.std([m.mean(0) for m in means.values()], axis=0).mean()
    assert spread < between


def test_max_per_class_keeps_a_seeded_subset(metadataset_records, tmp_path):
    spec = load_spec(metadataset_records / "aircraft")
    build_cache(spec, tmp_path / "a", IMAGE_SIZE, max_per_class=3, seed=1)
    build_cache(spec, tmp_path / "b", IMAGE_SIZE, max_per_class=3, seed=1)
    a, b = (SourceCache.open(tmp_path / x, "aircraft", IMAGE_SIZE) for x in "ab")
    assert set(a.counts.values()) == {3}
    np.testing.assert_array_equal(a.images, b.images)


def _damaged_copy(records, tmp_path, source="aircraft"):
    copy = tmp_path / "records"
    shutil.copytree(records / source, copy / source)
    return copy / source


def test_truncated_record_names_file_and_offset(metadataset_records, tmp_path):
    folder = _damaged_copy(metadataset_records, tmp_path)
    path = folder / "3.tfrecords"
    index = index_records(path)
    last = int(index.offsets[-1])
    path.write_bytes(path.read_bytes()[: last + FRAMING_BYTES + 10])
    with pytest.raises(DataError, match=rf"{path}.*byte offset {last}.*truncated"):
        build_cache(load_spec(folder), tmp_path / "cache", IMAGE_SIZE)


def test_file_cut_inside_a_header_names_the_offset(metadataset_records, tmp_path):
    folder = _damaged_copy(metadataset_records, tmp_path)
    path = folder / "0.tfrecords"
    end = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"\x07\x00\x00")
    with pytest.raises(DataError, match=rf"{path}.*byte offset {end}"):
        index_records(path)


def test_corrupt_jpeg_names_file_and_offset(metadataset_records, tmp_path):
    folder = _damaged_copy(metadataset_records, tmp_path)
    path = folder / "1.tfrecords"
    index = index_records(path)
    data = bytearray(path.read_bytes())
    second = int(index.offsets[1])
    jpeg_start = data.index(b"\xff\xd8", second)  # the JPEG's start-of-image marker inside record 1
    data[jpeg_start : jpeg_start + 40] = b"\x00" * 40
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"{path}.*byte offset {second}.*cannot be decoded"):
        list(read_class_images(path, 1, len(index)))


def test_record_count_must_match_the_spec(metadataset_records, tmp_path):
    folder = _damaged_copy(metadataset_records, tmp_path)
    spec = json.loads((folder / "dataset_spec.json").read_text())
    spec["images_per_class"]["2"] += 1
    (folder / "dataset_spec.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match=r"2\.tfrecords holds .* records but dataset_spec.json says"):
        build_cache(load_spec(folder), tmp_path / "cache", IMAGE_SIZE)


def test_record_of_another_class_is_refused(metadataset_records, tmp_path):
    folder = _damaged_copy(metadataset_records, tmp_path)
    (folder / "4.tfrecords").write_bytes((folder / "5.tfrecords").read_bytes())
    count = len(index_records(folder / "4.tfrecords"))
    with pytest.raises(DataError, match=r"4\.tfrecords at byte offset 0: its label is \[5\]"):
        list(read_class_images(folder / "4.tfrecords", 4, count))


def test_official_splits_are_checked(metadataset_records, tmp_path):
    spec = load_spec(metadataset_records / "aircraft")
    names = {
        split: [spec.class_names[c] for c in spec.split_classes[ours]]
        for split, ours in (("train", "train"), ("valid", "val"), ("test", "test"))
    }
    check_official_splits(spec, write_official_splits(tmp_path / "aircraft_splits.json", names))
    names["train"], names["test"] = names["train"][1:], names["test"] + names["train"][:1]
    with pytest.raises(DataError, match="differ from the official split"):
        check_official_splits(spec, write_official_splits(tmp_path / "swapped.json", names))


def test_missing_cache_says_how_to_build_it(tmp_path):
    with pytest.raises(DataError, match=r"images_32\.npy.*make data-metadataset RECORDS="):
        configured("metadataset", root=str(tmp_path), sources=["omniglot"], test_sources=None, image_size=32)
