"""miniImageNet preparation from the layouts people have on disk, and what failed attempts leave behind."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conml.data.images.cache import read_split
from conml.data.images.miniimagenet import prepare_miniimagenet
from conml.errors import DataError
from tests.images_fixture import SPLITS, wnid, write_mini_csv

CLASSES = {"train": 3, "val": 2, "test": 2}
PER_CLASS = 4


@pytest.fixture
def flat(tmp_path):
    """The Ravi & Larochelle layout (every image in images/) and its prepared cache."""
    source = write_mini_csv(tmp_path / "flat", CLASSES, PER_CLASS)
    prepare_miniimagenet(source, tmp_path / "flat_cache")
    return source, tmp_path / "flat_cache"


def move_into_class_folders(source, folder_of) -> None:
    """Move every image the CSVs name into folder_of(split, label) (relative to `source`)."""
    for split in SPLITS:
        for line in (source / f"{split}.csv").read_text().splitlines()[1:]:
            filename, label = line.split(",")
            target = source / folder_of(split, label)
            target.mkdir(parents=True, exist_ok=True)
            (source / "images" / filename).rename(target / filename)


def assert_same_cache(a, b) -> None:
    for split in SPLITS:
        first, second = read_split(a, "miniimagenet", split), read_split(b, "miniimagenet", split)
        assert first.class_names == second.class_names
        np.testing.assert_array_equal(first.images, second.images)


@pytest.mark.parametrize("layout", ["images/<label>", "<split>/<label>"])
def test_per_class_folders_with_the_csv_names_are_read_as_they_are(flat, tmp_path, layout):
    source, flat_cache = flat
    moved = shutil.copytree(source, tmp_path / "moved")
    move_into_class_folders(moved, lambda split, label: layout.replace("<split>", split).replace("<label>", label))
    prepare_miniimagenet(moved, tmp_path / "cache")
    assert_same_cache(tmp_path / "cache", flat_cache)


def test_per_class_folders_of_another_release_are_named_as_such(flat, tmp_path):
    source, _ = flat
    other = shutil.copytree(source, tmp_path / "other")
    move_into_class_folders(other, lambda split, label: f"images/{label}")
    for path in sorted((other / "images").rglob("*.jpg")):
        path.rename(path.with_name(f"{path.parent.name}_{path.stem[-4:]}.JPEG"))  # ILSVRC-style names
    with pytest.raises(DataError) as error:
        prepare_miniimagenet(other, tmp_path / "cache")
    message = str(error.value)
    assert f"12 of the 12 images listed in {other / 'train.csv'} are missing" in message
    assert f"holds per-class folders (<wnid>/<file>, e.g. {wnid('train', 0)}/{wnid('train', 0)}_0000.JPEG)" in message
    assert "another release of miniImageNet" in message and "layout (b)" in message
    assert "the download is partial" not in message


def test_a_partial_download_into_class_folders_is_called_partial(flat, tmp_path):
    source, _ = flat
    moved = shutil.copytree(source, tmp_path / "moved")
    move_into_class_folders(moved, lambda split, label: f"images/{label}")
    (moved / "images" / wnid("val", 1) / f"{wnid('val', 1)}00000002.jpg").unlink()
    with pytest.raises(
        DataError, match=r"1 of the 8 images listed in .*val\.csv are missing .*the download is partial"
    ):
        prepare_miniimagenet(moved, tmp_path / "cache")


def test_partial_files_of_an_interrupted_attempt_are_removed(flat, tmp_path, capsys):
    source, flat_cache = flat
    cache = tmp_path / "cache"
    cache.mkdir()
    leftover = cache / "val.npy.partial"
    leftover.write_bytes(b"half written")
    prepare_miniimagenet(source, cache)
    assert "left by an earlier preparation that did not finish" in capsys.readouterr().out
    assert sorted(p.name for p in cache.iterdir()) == ["manifest.json", "test.npy", "train.npy", "val.npy"]
    assert_same_cache(cache, flat_cache)


def test_a_failed_attempt_removes_its_partial_file(flat, tmp_path):
    source, _ = flat
    broken = shutil.copytree(source, tmp_path / "broken")
    victim = broken / "images" / f"{wnid('val', 1)}00000002.jpg"
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(DataError, match=victim.name):
        prepare_miniimagenet(broken, tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["train.npy"]
