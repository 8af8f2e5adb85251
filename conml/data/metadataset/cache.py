"""The image cache of a Meta-Dataset source: every JPEG decoded once, resized and kept as uint8.

Episodes then gather rows of a memory-mapped array instead of scanning TFRecords and decoding
JPEGs (the slow part of the official reader). Layout under the cache root, per source and size:

    <root>/<source>/images_<size>.npy   uint8 [images, size, size, 3]; each class's images contiguous
    <root>/<source>/index_<size>.json   per class: first row and image count; per split: class ids
                                         and the class groups of the source's ontology

The index is written last, so a cache without one is incomplete and is never read. Images are
resized as Meta-Dataset's reader resizes them (`resize_like_metadataset`); the index's version
changes whenever what a cache holds would change, and caches of another version are refused.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from PIL import Image
from tqdm.auto import tqdm

from conml.data.metadataset.records import read_class_images
from conml.data.metadataset.spec import SPLIT_NAMES, SourceSpec
from conml.errors import DataError

# 2: resized with aligned-corner bilinear sampling and no antialiasing (Meta-Dataset's reader).
# 1: resized with PIL's bilinear filter, which averages over the whole footprint when shrinking.
INDEX_VERSION = 2
PREPARE_COMMAND = "make data-metadataset RECORDS=<folder of converted Meta-Dataset records> ARGS='--image-size <size>'"


def cache_files(root: Path, source: str, image_size: int) -> tuple[Path, Path]:
    folder = root / source
    return folder / f"images_{image_size}.npy", folder / f"index_{image_size}.json"


@dataclass(frozen=True)
class SourceCache:
    """A built cache, opened for sampling: a read-only memory map plus the class index."""

    name: str
    images: np.ndarray
    starts: dict[int, int]
    counts: dict[int, int]
    split_classes: dict[str, tuple[int, ...]]
    ontology: str
    groups: dict[str, tuple[tuple[int, ...], ...]]

    @classmethod
    def open(cls, root: Path, source: str, image_size: int) -> SourceCache:
        images_path, index_path = cache_files(root, source, image_size)
        if not index_path.is_file() or not images_path.is_file():
            raise DataError(
                f"No {image_size}px Meta-Dataset cache for source '{source}' under {root}: expected "
                f"{images_path} and {index_path}. Build it once from the converted records with `{PREPARE_COMMAND}` "
                "(see docs/datasets_metadataset.md), or set dataset.root to where it was built."
            )
        index = json.loads(index_path.read_text())
        if index.get("version") != INDEX_VERSION:
            raise DataError(
                f"{index_path} is a version-{index.get('version')} Meta-Dataset cache, but this code reads version {INDEX_VERSION}, "
                "whose images are resized as Meta-Dataset's reader resizes them (bilinear with aligned corners, no "
                "antialiasing; version 1 used PIL's smoothing bilinear filter, so its images differ). Rebuild the cache "
                f"with `{PREPARE_COMMAND}`; it replaces the old files."
            )
        images = np.load(images_path, mmap_mode="r")
        if images.shape != (index["total"], image_size, image_size, 3) or images.dtype != np.uint8:
            raise DataError(
                f"{images_path} has shape {images.shape} ({images.dtype}) but its index expects {index['total']} images; rebuild it with `{PREPARE_COMMAND}`."
            )
        classes = {int(c): (int(start), int(count)) for c, (start, count) in index["classes"].items()}
        return cls(
            name=source,
            images=images,
            starts={c: s for c, (s, _) in classes.items()},
            counts={c: n for c, (_, n) in classes.items()},
            split_classes={split: tuple(ids) for split, ids in index["splits"].items()},
            ontology=index["ontology"],
            groups={split: tuple(tuple(g) for g in groups) for split, groups in index["groups"].items()},
        )


@dataclass(frozen=True)
class _ClassJob:
    """Decode the kept records of one class file into rows start.. of the cache array."""

    record_path: Path
    class_id: int
    expected: int
    start: int
    keep: np.ndarray | None
    images_path: Path
    image_size: int


def resize_like_metadataset(image: Image.Image, size: int) -> np.ndarray:
    """RGB uint8 [size, size, 3], resampled as Meta-Dataset's reader does it.

    The reader (meta_dataset/data/decoder.py) calls `tf.image.resize_images(image, [size, size],
    BILINEAR, align_corners=True)`: output pixel i reads input position i * (length - 1) / (size - 1)
    and interpolates linearly between the two nearest pixels, with no smoothing when shrinking.
    The reader keeps that result as float32; we round it to the nearest integer to store uint8.
    """
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    top, bottom, down = _bilinear_taps(pixels.shape[0], size)
    left, right, across = _bilinear_taps(pixels.shape[1], size)

    def along_rows(rows: np.ndarray) -> np.ndarray:
        return rows[:, left] + (rows[:, right] - rows[:, left]) * across[None, :, None]

    upper, lower = along_rows(pixels[top]), along_rows(pixels[bottom])
    resized = upper + (lower - upper) * down[:, None, None]
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def _bilinear_taps(length: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two input indices each output index interpolates between, and the weight of the second (float32, as TensorFlow computes it)."""
    scale = np.float32((length - 1) / (size - 1)) if size > 1 else np.float32(0)
    position = np.arange(size, dtype=np.float32) * scale
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, length - 1)
    return low, high, position - low.astype(np.float32)


def build_cache(
    spec: SourceSpec, root: Path, image_size: int, max_per_class: int | None = None, seed: int = 0, workers: int = 1
) -> Path:
    """Decode, resize (`resize_like_metadataset`) and store one source; returns the index path.

    `max_per_class` keeps a seeded random subset of the larger classes (Quick Draw has ~140k images
    per class); episodes then sample from the kept images only. The array is written to a
    `.partial` file first: one left by an interrupted earlier attempt is replaced, and a failed
    attempt removes its own.
    """
    images_path, index_path = cache_files(root, spec.name, image_size)
    images_path.parent.mkdir(parents=True, exist_ok=True)
    index_path.unlink(missing_ok=True)
    partial = images_path.with_name(images_path.name + ".partial")
    scratch = index_path.with_name(index_path.name + ".partial")
    for leftover in (partial, scratch):
        if leftover.exists():
            print(f"Removing {leftover}, left by an earlier preparation that did not finish.")
            leftover.unlink()
    try:
        row, classes = _write_images(spec, partial, image_size, max_per_class, seed, workers)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise

    os.replace(partial, images_path)
    index = {
        "version": INDEX_VERSION,
        "source": spec.name,
        "image_size": image_size,
        "resize": "bilinear, aligned corners, no antialiasing (tf.image.resize_images with align_corners=True), rounded",
        "records": str(spec.directory),
        "max_per_class": max_per_class,
        "seed": seed,
        "total": row,
        "classes": classes,
        "splits": {split: list(spec.split_classes[split]) for split in SPLIT_NAMES},
        "ontology": spec.ontology,
        "groups": {split: [list(g) for g in spec.groups[split]] for split in SPLIT_NAMES},
    }
    scratch.write_text(json.dumps(index))
    os.replace(scratch, index_path)
    return index_path


def _write_images(
    spec: SourceSpec, partial: Path, image_size: int, max_per_class: int | None, seed: int, workers: int
) -> tuple[int, dict]:
    """Fill `partial` with every kept image, class by class; returns the row count and {class: [first row, count]}."""
    jobs, classes, row = [], {}, 0
    for class_id in spec.classes:
        available = spec.images_per_class[class_id]
        keep = None
        if max_per_class is not None and available > max_per_class:
            keep = np.sort(np.random.default_rng([seed, class_id]).choice(available, max_per_class, replace=False))
        count = available if keep is None else len(keep)
        jobs.append(_ClassJob(spec.record_path(class_id), class_id, available, row, keep, partial, image_size))
        classes[str(class_id)] = [row, count]
        row += count
    open_memmap(partial, mode="w+", dtype=np.uint8, shape=(row, image_size, image_size, 3)).flush()

    progress = tqdm(total=len(jobs), desc=f"{spec.name} {image_size}px", unit="class", dynamic_ncols=True)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_cache_class, jobs):
                progress.update(1)
    else:
        for job in jobs:
            _cache_class(job)
            progress.update(1)
    progress.close()
    return row, classes


def _cache_class(job: _ClassJob) -> int:
    images = np.load(job.images_path, mmap_mode="r+")
    row = job.start
    for _, image in read_class_images(job.record_path, job.class_id, job.expected, job.keep):
        images[row] = resize_like_metadataset(image, job.image_size)
        row += 1
    images.flush()
    return job.class_id
