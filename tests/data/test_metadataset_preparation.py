"""Preparing Meta-Dataset as a new user does it: where the cache goes, what --splits checks, how images
are resized, leftovers of failed attempts, and the message when a listed source is not prepared."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from conml.build import build
from conml.data.metadataset.cache import SourceCache, build_cache, cache_files, resize_like_metadataset
from conml.data.metadataset.prepare import main as prepare_cli
from conml.data.metadataset.prepare import prepare
from conml.data.metadataset.spec import check_splits, load_spec
from conml.errors import DataError
from tests.conftest import compose_config
from tests.metadataset_fixture import IMAGE_SIZE, metadataset_records  # noqa: F401 - fixture


def test_default_out_is_where_training_looks_under_conml_data(metadataset_records, tmp_path, monkeypatch):
    monkeypatch.setenv("CONML_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path)
    prepare_cli(["--records", str(metadataset_records), "--sources", "aircraft", "--image-size", str(IMAGE_SIZE)])
    expected = tmp_path / "elsewhere" / "metadataset"
    assert all(path.is_file() for path in cache_files(expected, "aircraft", IMAGE_SIZE))
    assert not (tmp_path / "data").exists()
    assert compose_config(["dataset=metadataset"]).dataset.root == str(expected)


def test_splits_of_sources_with_a_split_file_must_have_one(metadataset_records, tmp_path):
    (tmp_path / "splits").mkdir()
    with pytest.raises(
        DataError, match=r"--splits .*splits has no aircraft_splits\.json, so the aircraft split cannot be checked"
    ):
        check_splits(load_spec(metadataset_records / "aircraft"), tmp_path / "splits")


@pytest.mark.parametrize("source, sizes", [("omniglot", "2/1/1 alphabets"), ("ilsvrc_2012", "8/5/5 classes")])
def test_sources_without_a_split_file_are_checked_by_size(metadataset_records, tmp_path, source, sizes):
    (tmp_path / "splits").mkdir()
    with pytest.raises(
        DataError, match=rf"has {sizes} per train/val/test split, but Meta-Dataset's {source} split has"
    ):
        check_splits(load_spec(metadataset_records / source), tmp_path / "splits")


def test_omniglot_of_the_right_size_passes_and_says_only_sizes_were_checked(metadataset_records, tmp_path):
    spec = load_spec(metadataset_records / "omniglot")
    alphabets = {"train": 25, "val": 5, "test": 20}
    full = replace(spec, groups={split: tuple((c,) for c in range(n)) for split, n in alphabets.items()})
    (tmp_path / "splits").mkdir()
    said = check_splits(full, tmp_path / "splits")
    assert "no split file exists for omniglot" in said and "checked the split sizes only (25/5/20 alphabets)" in said


def test_shipped_dataset_specs_give_the_class_names_of_omniglot_and_ilsvrc(metadataset_records, tmp_path, capsys):
    conversion = tmp_path / "dataset_conversion"
    (conversion / "splits").mkdir(parents=True)
    (conversion / "dataset_specs").mkdir()
    for source in ("omniglot", "ilsvrc_2012"):
        shutil.copy(
            metadataset_records / source / "dataset_spec.json",
            conversion / "dataset_specs" / f"{source}_dataset_spec.json",
        )
    prepare(
        metadataset_records, tmp_path / "cache", IMAGE_SIZE, ["omniglot", "ilsvrc_2012"], None, 1, conversion / "splits"
    )
    out = capsys.readouterr().out
    for source in ("omniglot", "ilsvrc_2012"):
        assert f"{source}: split check: no split file exists for {source}" in out
        assert f"class names of every split match {conversion / 'dataset_specs' / f'{source}_dataset_spec.json'}" in out

    shipped = json.loads((conversion / "dataset_specs" / "omniglot_dataset_spec.json").read_text())
    shipped["class_names"]["0"] = "Another_alphabet-character01"
    (conversion / "dataset_specs" / "omniglot_dataset_spec.json").write_text(json.dumps(shipped))
    with pytest.raises(
        DataError, match=r"train classes of .*omniglot.* differ from the official split .*omniglot_dataset_spec\.json"
    ):
        check_splits(load_spec(metadataset_records / "omniglot"), conversion / "splits")


def test_resize_samples_like_metadataset_without_smoothing():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (169, 169, 3), dtype=np.uint8)
    # Aligned corners: output i reads input i * 168 / 84 = 2i exactly, whatever its neighbours are.
    np.testing.assert_array_equal(resize_like_metadataset(Image.fromarray(noise), 85), noise[::2, ::2])
    # PIL's bilinear filter averages the footprint when shrinking: not what Meta-Dataset does.
    smoothed = np.asarray(Image.fromarray(noise).resize((85, 85), Image.BILINEAR))
    assert np.abs(smoothed.astype(int) - noise[::2, ::2]).mean() > 30

    # Linear in both directions, so bilinear interpolation reproduces it exactly, up and down.
    rows, cols = np.mgrid[0:64, 0:40]
    ramp = np.repeat((rows + 2 * cols)[..., None], 3, axis=2).astype(np.uint8)
    for size in (32, 84):
        i, j = np.mgrid[0:size, 0:size]
        expected = i * 63 / (size - 1) + 2 * j * 39 / (size - 1)
        resized = resize_like_metadataset(Image.fromarray(ramp), size)
        assert np.abs(resized[..., 0] - expected).max() <= 0.5 + 1e-3


def test_a_cache_of_the_earlier_resize_is_refused_with_the_rebuild_command(metadataset_records, tmp_path):
    index = build_cache(load_spec(metadataset_records / "aircraft"), tmp_path, IMAGE_SIZE)
    SourceCache.open(tmp_path, "aircraft", IMAGE_SIZE)
    index.write_text(json.dumps({**json.loads(index.read_text()), "version": 1}))
    with pytest.raises(
        DataError,
        match=r"version-1 Meta-Dataset cache, but this code reads version 2.*no antialiasing.*make data-metadataset",
    ):
        SourceCache.open(tmp_path, "aircraft", IMAGE_SIZE)


def test_leftovers_of_an_interrupted_attempt_are_replaced(metadataset_records, tmp_path, capsys):
    images, index = cache_files(tmp_path, "aircraft", IMAGE_SIZE)
    images.parent.mkdir(parents=True)
    leftovers = [images.with_name(images.name + ".partial"), index.with_name(index.name + ".partial")]
    for path in leftovers:
        path.write_bytes(b"half written")
    build_cache(load_spec(metadataset_records / "aircraft"), tmp_path, IMAGE_SIZE)
    assert "left by an earlier preparation that did not finish" in capsys.readouterr().out
    assert not any(path.exists() for path in leftovers)
    assert SourceCache.open(tmp_path, "aircraft", IMAGE_SIZE).images.shape[1] == IMAGE_SIZE


def test_a_failed_attempt_removes_its_partial_file(metadataset_records, tmp_path):
    folder = tmp_path / "records" / "aircraft"
    shutil.copytree(metadataset_records / "aircraft", folder)
    (folder / "3.tfrecords").write_bytes((folder / "3.tfrecords").read_bytes()[:-30])
    with pytest.raises(DataError, match="3.tfrecords"):
        build_cache(load_spec(folder), tmp_path / "cache", IMAGE_SIZE)
    assert list((tmp_path / "cache").rglob("*.partial")) == []


def test_training_on_one_source_names_test_sources_when_the_others_are_missing(metadataset_records, tmp_path):
    prepare(metadataset_records, tmp_path, IMAGE_SIZE, ["omniglot"], None, 1, None)
    settings = [
        "dataset=metadataset",
        f"dataset.root={tmp_path}",
        f"dataset.image_size={IMAGE_SIZE}",
        "dataset.sources=[omniglot]",
        "device=cpu",
    ]
    with pytest.raises(DataError) as error:
        build(compose_config(settings).dataset)
    message = str(error.value)
    assert (
        "for ilsvrc_2012, aircraft, cu_birds, dtd, quickdraw, fungi, vgg_flower, traffic_sign, mscoco (in dataset.test_sources):"
        in message
    )
    assert "set dataset.test_sources=[omniglot]" in message and "make data-metadataset" in message
    source = build(compose_config([*settings, "dataset.test_sources=[omniglot]"]).dataset)
    assert list(source.test_sets()) == ["omniglot"]


def test_a_missing_training_source_is_named_with_its_key(metadataset_records, tmp_path):
    prepare(metadataset_records, tmp_path, IMAGE_SIZE, ["omniglot"], None, 1, None)
    settings = [
        "dataset=metadataset",
        f"dataset.root={tmp_path}",
        f"dataset.image_size={IMAGE_SIZE}",
        "dataset.sources=[omniglot,aircraft]",
        "device=cpu",
    ]
    with pytest.raises(
        DataError,
        match=r"for aircraft \(in dataset.sources and dataset.test_sources\); ilsvrc_2012, .*, mscoco \(in dataset.test_sources\).*list only prepared sources \(omniglot\)",
    ):
        build(compose_config(settings).dataset)
