"""Omniglot from the official layout: both split schemes, rotations as classes, Lake's runs, bad input."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conml.data.images import omniglot_prepare
from conml.data.images.cache import read_split
from conml.data.images.omniglot import STANDARD, decode
from conml.data.images.omniglot_prepare import download, prepare_omniglot
from conml.data.images.omniglot_runs import FILE, load_runs, runs_episode
from conml.errors import DataError
from tests.dataset_settings import source as configured
from tests.omniglot_fixture import DRAWINGS, answers, drawing, write_extracted, write_official_zips, write_zip

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """The official zips and their preparation (written once for the module)."""
    root = tmp_path_factory.mktemp("omniglot")
    source = write_official_zips(root / "download")
    prepare_omniglot(source, root / "prepared")
    return source, root / "prepared"


def cache(prepared: Path, scheme: str, split: str):
    return read_split(prepared / scheme, "omniglot", split)


def test_split_sizes_are_vinyals_and_lakes(official):
    _, prepared = official
    vinyals = [cache(prepared, "vinyals", s).num_classes for s in SPLITS]
    lake = [cache(prepared, "lake", s).num_classes for s in SPLITS]
    assert vinyals == [1028, 172, 423] and vinyals[0] + vinyals[1] == 1200
    assert lake == [964, 659, 659]
    assert {s: v[0] for s, v in STANDARD["vinyals"].items()} == dict(zip(SPLITS, vinyals))
    train = set(cache(prepared, "vinyals", "train").class_names) | set(cache(prepared, "vinyals", "val").class_names)
    assert not train & set(cache(prepared, "vinyals", "test").class_names)


def test_drawings_are_28_pixel_binary_with_strokes_255(official):
    _, prepared = official
    split = cache(prepared, "vinyals", "test")
    assert split.images.shape == (423 * DRAWINGS, 28, 28, 1) and split.images.dtype == np.uint8
    assert set(np.unique(split.images)) <= {0, 255}
    # the fixture's strokes are black on white: inverted, the background is 0
    assert split.images[:, -1, 0, 0].max() == 0


def test_extracted_folders_and_torchvisions_folder_give_the_same_cache(official, tmp_path):
    _, prepared = official
    extracted = write_extracted(tmp_path / "extracted")
    prepare_omniglot(extracted, tmp_path / "a")
    torchvision = tmp_path / "tv"
    shutil.copytree(extracted, torchvision / "omniglot-py")
    prepare_omniglot(torchvision, tmp_path / "b")
    for out in (tmp_path / "a", tmp_path / "b"):
        for scheme in ("vinyals", "lake"):
            for split in SPLITS:
                np.testing.assert_array_equal(cache(out, scheme, split).images, cache(prepared, scheme, split).images)


def test_rotations_are_new_classes_turned_counter_clockwise(official):
    _, prepared = official
    root = str(prepared / "vinyals")
    source = configured("omniglot", root=root, ways=20, shots=1, queries=1, rotations=4, preload=False)
    plain = configured("omniglot", root=root, ways=5, shots=1, queries=1, rotations=1, preload=False)
    assert source.counts["test"].size == 4 * 423
    split = source.splits["test"]
    turned = 0
    for index in range(10):
        batch = source.sample("test", index, 1)
        for x in batch.support.x[0]:
            image = x[0].numpy()
            matches = [
                k for k in range(4) for row in split.images if np.array_equal(np.rot90(row[:, :, 0] / 255.0, k), image)
            ]
            assert matches, "every drawing is a stored drawing turned by a multiple of 90 degrees"
            turned += matches[0] > 0
    assert turned > 0
    # one rotation: episodes drawn exactly as before rotations existed (same generator, same classes)
    assert plain.sample("test", 0, 1).support.x.shape == (1, 5, 1, 28, 28)


def test_lakes_runs_keep_their_label_mapping(official):
    _, prepared = official
    runs = load_runs(prepared / FILE)
    assert runs["answers"].tolist() == [answers(r) for r in range(1, 21)]
    batch = runs_episode(runs, lambda pixels: pixels.permute(0, 3, 1, 2).float() / 255.0)
    assert batch.support.x.shape == (20, 20, 1, 28, 28) and batch.query.y.shape == (20, 20)
    # test item j of every run is the drawing of the training class its label names
    for r in range(20):
        support = batch.support.x[r]
        for j in range(20):
            assert torch.equal(batch.query.x[r, j], support[batch.query.y[r, j]])


def test_prepare_command_prints_both_schemes(official, tmp_path, capsys):
    source, _ = official
    omniglot_prepare.main(["--source", str(source), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert "1028 classes" in printed and "964 classes" in printed and "lake_runs.npz" in printed


def refused(source: Path, out: Path, *words: str) -> None:
    with pytest.raises(DataError) as error:
        prepare_omniglot(source, out)
    assert all(word in str(error.value) for word in words), str(error.value)
    assert not out.exists(), "nothing is written before every input is checked"


def test_a_missing_source_folder_is_named(tmp_path):
    refused(tmp_path / "nowhere", tmp_path / "out", "does not exist")


def test_a_file_where_a_set_folder_should_be_is_named(official, tmp_path):
    source, _ = official
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(source / "images_evaluation.zip", bad)
    (bad / "images_background").write_text("not a folder")
    refused(bad, tmp_path / "out", "is a file where", "images_background")


def test_a_corrupt_png_is_named(official, tmp_path):
    source, _ = official
    bad = write_extracted(tmp_path / "bad")
    victim = sorted((bad / "images_evaluation").rglob("*.png"))[5]
    victim.write_bytes(victim.read_bytes()[:20])
    refused(bad, tmp_path / "out", "cannot be decoded", victim.name)


def test_a_wrong_layout_is_named(official, tmp_path):
    source, _ = official
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(source / "images_evaluation.zip", bad)
    with zipfile.ZipFile(source / "images_background.zip") as archive:  # one folder level too few
        members = {n.replace("/character", "_character", 1): archive.read(n) for n in archive.namelist()}
    write_zip(bad / "images_background.zip", members)
    refused(bad, tmp_path / "out", "not in the official layout")


def test_a_partial_set_is_named(official, tmp_path):
    source, _ = official
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(source / "images_background.zip", bad)
    with zipfile.ZipFile(source / "images_evaluation.zip") as archive:
        members = {n: archive.read(n) for n in archive.namelist() if "/ULOG/" not in n}
    write_zip(bad / "images_evaluation.zip", members)
    refused(bad, tmp_path / "out", "does not hold the official images_evaluation set", "ULOG")


def test_an_output_that_is_a_file_is_refused(official, tmp_path):
    source, _ = official
    out = tmp_path / "out"
    out.write_text("a file")
    with pytest.raises(DataError, match="is a file, not a folder"):
        prepare_omniglot(source, out)
    assert out.read_text() == "a file"


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(official, tmp_path, monkeypatch):
    source, _ = official
    monkeypatch.setattr(
        omniglot_prepare, "MD5", {name: hashlib.md5(b"other").hexdigest() for name in omniglot_prepare.MD5}
    )
    folder = tmp_path / "downloads"
    with pytest.raises(DataError, match="not the published"):
        download(folder, url=source.as_uri() + "/{name}.zip")
    assert not any(folder.iterdir())


def test_a_download_with_the_published_checksums_is_kept(official, tmp_path, monkeypatch):
    source, _ = official
    sums = {name: omniglot_prepare.md5_file(source / f"{name}.zip") for name in omniglot_prepare.MD5}
    monkeypatch.setattr(omniglot_prepare, "MD5", sums)
    download(tmp_path / "downloads", url=source.as_uri() + "/{name}.zip")
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == sorted(f"{n}.zip" for n in sums)


def test_the_command_line_refuses_bad_input_in_one_paragraph(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        omniglot_prepare.main(["--source", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().startswith("error:") and "Traceback" not in err


def test_decoding_inverts_and_keeps_pixels_binary():
    image = decode(drawing(3, 1), "fixture")
    assert image.shape == (28, 28, 1) and set(np.unique(image)) <= {0, 255}


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the official Omniglot files are not at {SHARED} (real-data test)")
def test_the_official_files_prepare_to_the_published_sizes(tmp_path):
    prepare_omniglot(SHARED, tmp_path)
    for scheme, sizes in STANDARD.items():
        for split, (classes, images) in sizes.items():
            data = cache(tmp_path, scheme, split)
            assert (data.num_classes, len(data.images)) == (classes, images)
    runs = load_runs(tmp_path / FILE)
    # every test drawing is a drawing of the evaluation set (the official runs were cut from it)
    evaluation = cache(tmp_path, "lake", "test").images
    stored = {row.tobytes() for row in evaluation}
    assert all(item.tobytes() in stored for item in runs["test"].reshape(-1, 28, 28, 1))


def test_official_files_in_the_output_folder_are_prepared_without_a_download(official, tmp_path, monkeypatch):
    source, prepared = official
    out = tmp_path / "data" / "omniglot"
    shutil.copytree(source, out)
    monkeypatch.setattr(omniglot_prepare, "download", lambda *args: pytest.fail("nothing is downloaded"))
    omniglot_prepare.main(["--out", str(out)])
    np.testing.assert_array_equal(cache(out, "vinyals", "test").images, cache(prepared, "vinyals", "test").images)
