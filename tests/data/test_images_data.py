"""miniImageNet / tieredImageNet preparation from their real on-disk formats, and the cache checks."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

from conml.data.images.cache import read_split
from conml.data.images.miniimagenet import prepare_miniimagenet
from conml.data.images.prepare import main as prepare_cli
from conml.data.images.tieredimagenet import prepare_tieredimagenet
from conml.errors import DataError
from conml.tables.table_sweep import preset_overrides
from conml.train import run
from tests.conftest import TINY, compose_config
from tests.dataset_settings import source
from tests.images_fixture import SPLITS, class_images, wnid, write_mini_csv, write_mini_pickles, write_tiered_pickles

CLASSES = {"train": 3, "val": 2, "test": 2}
PER_CLASS = 4


def images(root, name: str = "miniimagenet", **settings):
    """dataset=<name> read from the cache at `root` on the host (no preload), with `settings` changed."""
    return source(name, root=str(root), preload=False, **settings)


def expected_split(split: str) -> np.ndarray:
    """The fixture's images of a split, grouped by class."""
    return np.concatenate([class_images(split, label, PER_CLASS) for label in range(CLASSES[split])])


def check_prepared(root, dataset: str, exact: bool) -> None:
    for split in SPLITS:
        data = read_split(root, dataset, split)
        assert data.class_names == tuple(wnid(split, label) for label in range(CLASSES[split]))
        assert data.counts.tolist() == [PER_CLASS] * CLASSES[split]
        assert data.images.shape == (CLASSES[split] * PER_CLASS, 84, 84, 3) and data.images.dtype == np.uint8
        difference = np.abs(data.images.astype(int) - expected_split(split)).mean()
        assert difference == 0 if exact else difference < 12, f"{split}: mean absolute pixel difference {difference}"


def test_ravi_csv_layout_is_prepared(tmp_path):
    source = write_mini_csv(tmp_path / "raw", CLASSES, PER_CLASS)
    prepare_miniimagenet(source, tmp_path / "cache", workers=2)
    check_prepared(tmp_path / "cache", "miniimagenet", exact=False)  # JPEG is lossy, and some were resized


def test_mini_pickles_are_prepared_exactly(tmp_path):
    source = write_mini_pickles(tmp_path / "raw", CLASSES, PER_CLASS)
    (source / "mini-imagenet-cache-val.pkl").rename(source / "mini-imagenet-cache-validation.pkl")  # learn2learn's name
    prepare_miniimagenet(source, tmp_path / "cache")
    check_prepared(tmp_path / "cache", "miniimagenet", exact=True)


def test_tiered_pickles_are_prepared_exactly(tmp_path):
    source = write_tiered_pickles(tmp_path / "raw" / "tiered-imagenet", CLASSES, PER_CLASS)
    prepare_tieredimagenet(source.parent, tmp_path / "cache", workers=2)  # found in the tiered-imagenet/ subfolder
    check_prepared(tmp_path / "cache", "tieredimagenet", exact=True)


def test_cli_prepares_and_summarises(tmp_path, capsys):
    source = write_mini_pickles(tmp_path / "raw", CLASSES, PER_CLASS)
    prepare_cli("miniimagenet", ["--source", str(source), "--out", str(tmp_path / "cache"), "--workers", "1"])
    out = capsys.readouterr().out
    assert "train: 3 classes, 12 images  (the standard split has 64 classes, 38400 images)" in out
    with pytest.raises(SystemExit) as exit_info:
        prepare_cli("miniimagenet", ["--source", str(tmp_path / "nowhere"), "--out", str(tmp_path / "other")])
    assert exit_info.value.code == 2
    assert "mini-imagenet-cache-train.pkl" in capsys.readouterr().err


def test_corrupt_jpeg_is_named(tmp_path):
    source = write_mini_csv(tmp_path / "raw", CLASSES, PER_CLASS)
    victim = source / "images" / f"{wnid('val', 1)}00000002.jpg"
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(DataError, match=victim.name):
        prepare_miniimagenet(source, tmp_path / "cache")


def test_missing_images_report_a_partial_download(tmp_path):
    source = write_mini_csv(tmp_path / "raw", CLASSES, PER_CLASS)
    (source / "images" / f"{wnid('test', 0)}00000001.jpg").unlink()
    with pytest.raises(DataError, match=r"1 of the 8 images listed in .*test.csv are missing"):
        prepare_miniimagenet(source, tmp_path / "cache")


def test_corrupt_png_in_pickle_is_named_with_its_index(tmp_path):
    source = write_tiered_pickles(tmp_path / "raw", CLASSES, PER_CLASS)
    path = source / "train_images_png.pkl"
    images = pickle.loads(path.read_bytes())
    images[5] = images[5][:40]
    path.write_bytes(pickle.dumps(images, protocol=2))
    with pytest.raises(DataError, match=r"train_images_png\.pkl \[image 5\]"):
        prepare_tieredimagenet(source, tmp_path / "cache")


@pytest.mark.parametrize("dataset", ["miniimagenet", "tieredimagenet"])
def test_truncated_pickle_is_named(tmp_path, dataset):
    if dataset == "miniimagenet":
        source, name, prepare = (
            write_mini_pickles(tmp_path / "raw", CLASSES, PER_CLASS),
            "mini-imagenet-cache-test.pkl",
            prepare_miniimagenet,
        )
    else:
        source, name, prepare = (
            write_tiered_pickles(tmp_path / "raw", CLASSES, PER_CLASS),
            "test_labels.pkl",
            prepare_tieredimagenet,
        )
    path = source / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=rf"{name} cannot be unpickled .* truncated"):
        prepare(source, tmp_path / "cache")


def test_unknown_layout_lists_both_accepted_layouts(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "readme.txt").write_text("hello")
    with pytest.raises(DataError, match=r"(?s)found: readme\.txt.*train\.csv.*mini-imagenet-cache-train\.pkl"):
        prepare_miniimagenet(tmp_path / "raw", tmp_path / "cache")


@pytest.fixture
def mini_cache(tmp_path):
    prepare_miniimagenet(write_mini_pickles(tmp_path / "raw", CLASSES, PER_CLASS), tmp_path / "cache")
    return tmp_path / "cache"


def test_missing_dataset_prints_layout_and_command(tmp_path):
    with pytest.raises(DataError) as error:
        images(tmp_path / "data" / "miniimagenet")
    message = str(error.value)
    for part in (
        "does not exist",
        "manifest.json",
        "train.npy",
        "make data-miniimagenet",
        "scripts/prepare_miniimagenet.py",
        "docs/datasets_imagenet.md",
    ):
        assert part in message


def test_unfinished_preparation_is_reported(mini_cache):
    (mini_cache / "manifest.json").unlink()
    with pytest.raises(DataError, match="missing or unfinished preparation"):
        images(mini_cache)


def test_changed_cache_file_fails_its_checksum(mini_cache):
    path = mini_cache / "val.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"val\.npy does not match its SHA-256"):
        images(mini_cache, shots=1, queries=2)
    images(mini_cache, ways=2, shots=1, queries=2, verify=False)  # sizes still agree


def test_truncated_cache_file_is_named(mini_cache):
    path = mini_cache / "test.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"test\.npy has .* bytes but manifest\.json records"):
        images(mini_cache, ways=2, shots=1, queries=2, verify=False)


def test_cache_of_the_other_dataset_is_refused(mini_cache, tmp_path):
    shutil.copytree(mini_cache, tmp_path / "tieredimagenet")
    with pytest.raises(DataError, match="holds the prepared 'miniimagenet' dataset, not 'tieredimagenet'"):
        images(tmp_path / "tieredimagenet", "tieredimagenet")


def test_a_run_without_the_dataset_stops_with_the_preparation_command(tmp_path):
    cfg = compose_config([*TINY, *preset_overrides("miniimagenet-protonet-1shot-conml"), f"paths.data_dir={tmp_path}"])
    with pytest.raises(DataError, match=r"make data-miniimagenet SOURCE=<download folder>"):
        run(cfg, tmp_path / "run")
