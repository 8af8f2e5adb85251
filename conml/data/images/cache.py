"""The prepared image cache: one uint8 array per split, grouped by class, plus a manifest.

A prepared dataset folder holds

    manifest.json   dataset name, image size; per split the class names and images per class;
                    per file its size in bytes and SHA-256
    train.npy       uint8 [N, S, S, C]: the images of class 0, then those of class 1, ...
                    (C = 3 colour channels, or 1 for grey datasets such as Omniglot)
    val.npy
    test.npy

Grouping by class turns "k images of class c" into k indices in one contiguous range, so episodes
are gathered by fancy indexing without any per-image lookup. The manifest is written last: a
folder without one is an unfinished preparation, and the loader says so. Each array is written as
`<split>.npy.partial` and renamed when complete; a failed preparation removes its partial file, and
the next one removes any that an interrupted one left.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm

from conml.errors import DataError

FORMAT = "conml-fewshot-images"
VERSION = 1
SPLITS = ("train", "val", "test")
IMAGE_SIZE = 84
DATASETS = ("miniimagenet", "tieredimagenet", "omniglot")
# The page that says where to obtain each dataset's files.
DOCS = {
    "miniimagenet": "docs/datasets_imagenet.md",
    "tieredimagenet": "docs/datasets_imagenet.md",
    "omniglot": "docs/datasets_omniglot.md",
}
# Datasets prepared into one cache folder per split scheme (<out>/<scheme>/), e.g. Omniglot's vinyals and lake.
SCHEMED = ("omniglot",)
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ImageSplit:
    """The images of one split, grouped by class: class c owns images[offsets[c] : offsets[c] + counts[c]]."""

    images: np.ndarray
    class_names: tuple[str, ...]
    counts: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def prepare_hint(dataset: str, root: Path | str) -> str:
    """The expected cache layout and the command that builds it."""
    out = Path(root).parent if dataset in SCHEMED else root
    return (
        f"Expected a prepared {dataset} cache in {root}: {MANIFEST}, train.npy, val.npy and test.npy "
        f"(uint8 [images, side, side, channels]). Build it from the downloaded files with "
        f"`make data-{dataset} SOURCE=<download folder>` or `python scripts/prepare_{dataset}.py --source "
        f"<download folder> --out {out}`; {DOCS[dataset]} lists where to obtain the files."
    )


def sha256_file(path: Path, progress: bool = False) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with (
        open(path, "rb") as handle,
        tqdm(
            total=size, unit="B", unit_scale=True, desc=f"checksum {path.name}", disable=not progress, leave=False
        ) as bar,
    ):
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


class CacheWriter:
    """Writes a prepared dataset split by split; `finish()` writes the manifest that completes it."""

    def __init__(self, root: Path, dataset: str, source_format: str, image_size: int = IMAGE_SIZE, channels: int = 3):
        self.root, self.dataset, self.source_format, self.image_size = Path(root), dataset, source_format, image_size
        self.channels = channels
        self.root.mkdir(parents=True, exist_ok=True)
        # A stale manifest would vouch for files that are about to be replaced.
        (self.root / MANIFEST).unlink(missing_ok=True)
        for leftover in [*(self.root / f"{split}.npy.partial" for split in SPLITS), self.root / f".{MANIFEST}.tmp"]:
            if leftover.exists():
                print(f"Removing {leftover}, left by an earlier preparation that did not finish.")
                leftover.unlink()
        self.splits: dict[str, dict] = {}
        self.files: dict[str, dict] = {}

    def write_split(self, split: str, class_names: list[str], counts: list[int], images: Iterable[np.ndarray]) -> None:
        """Write `images` ([S, S, C] uint8 each, class by class in `class_names` order) as `<split>.npy`."""
        total = int(sum(counts))
        name = f"{split}.npy"
        partial = self.root / f"{name}.partial"
        try:
            self._fill(partial, split, total, images)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, self.root / name)
        self.splits[split] = {
            "file": name,
            "classes": list(class_names),
            "counts": [int(c) for c in counts],
            "images": total,
        }
        self.files[name] = {"bytes": (self.root / name).stat().st_size, "sha256": sha256_file(self.root / name)}

    def _fill(self, path: Path, split: str, total: int, images: Iterable[np.ndarray]) -> None:
        array = np.lib.format.open_memmap(
            path, mode="w+", dtype=np.uint8, shape=(total, self.image_size, self.image_size, self.channels)
        )
        written = 0
        for image in tqdm(images, total=total, desc=f"{self.dataset} {split}", unit="img"):
            if written == total:
                raise DataError(
                    f"{self.dataset} {split}: the source yields more than the {total} images its labels list."
                )
            array[written] = image
            written += 1
        if written != total:
            raise DataError(f"{self.dataset} {split}: the source yielded {written} images but its labels list {total}.")
        array.flush()

    def finish(self) -> Path:
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "dataset": self.dataset,
            "source_format": self.source_format,
            "image_size": self.image_size,
            "channels": self.channels,
            "splits": self.splits,
            "files": self.files,
        }
        path = self.root / MANIFEST
        tmp = path.with_name(f".{MANIFEST}.tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, path)
        return path


def read_manifest(root: Path, dataset: str) -> dict:
    """The manifest of a prepared dataset, after checking it describes `dataset` in this format."""
    path = root / MANIFEST
    if not path.is_file():
        state = "does not exist" if not root.exists() else f"has no {MANIFEST} (missing or unfinished preparation)"
        file = next((p for p in (root, *root.parents) if p.exists() and not p.is_dir()), None)
        if file is not None:
            state = f"cannot be read: {file} is a file, not a folder"
        raise DataError(f"The {dataset} dataset folder {root} {state}. {prepare_hint(dataset, root)}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(
            f"{path} is not valid JSON ({error}); the preparation was interrupted or the file was edited. {prepare_hint(dataset, root)}"
        ) from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise DataError(
            f"{path} is not a {FORMAT} manifest of version {VERSION} (found format={manifest.get('format')!r}, "
            f"version={manifest.get('version')!r}). {prepare_hint(dataset, root)}"
        )
    if manifest.get("dataset") != dataset:
        raise DataError(
            f"{root} holds the prepared '{manifest.get('dataset')}' dataset, not '{dataset}'. Point dataset.root at the {dataset} folder."
        )
    missing = [s for s in SPLITS if s not in manifest["splits"]]
    if missing:
        raise DataError(f"{path} lists no {', '.join(missing)} split. {prepare_hint(dataset, root)}")
    return manifest


def read_split(root: Path, dataset: str, split: str, verify: bool = True) -> ImageSplit:
    """One split of a prepared dataset, memory-mapped, after checking it against the manifest.

    Sizes and array shapes are always checked; `verify` also compares every byte with its SHA-256.
    """
    root = Path(root)
    manifest = read_manifest(root, dataset)
    entry = manifest["splits"][split]
    path = root / entry["file"]
    expected = manifest["files"][entry["file"]]
    if not path.is_file():
        raise DataError(f"{path} is missing from the prepared {dataset} dataset. {prepare_hint(dataset, root)}")
    if path.stat().st_size != expected["bytes"]:
        raise DataError(
            f"{path} has {path.stat().st_size} bytes but {MANIFEST} records {expected['bytes']}: the file is truncated "
            f"or was replaced. {prepare_hint(dataset, root)}"
        )
    if verify and sha256_file(path, progress=expected["bytes"] > 1 << 30) != expected["sha256"]:
        raise DataError(
            f"{path} does not match its SHA-256 in {MANIFEST}: the file is damaged or was changed after preparation. {prepare_hint(dataset, root)}"
        )
    try:
        images = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as error:
        raise DataError(f"{path} is not a readable .npy array ({error}). {prepare_hint(dataset, root)}") from None
    size = manifest["image_size"]
    shape = (entry["images"], size, size, manifest.get("channels", 3))  # caches before grey datasets: colour
    if images.dtype != np.uint8 or images.shape != shape or sum(entry["counts"]) != entry["images"]:
        raise DataError(
            f"{path} holds {images.dtype} {images.shape}, but {MANIFEST} describes uint8 {shape}. {prepare_hint(dataset, root)}"
        )
    return ImageSplit(images, tuple(entry["classes"]), np.asarray(entry["counts"], dtype=np.int64))


def summarize(root: Path, standard: dict[str, tuple[int, int]]) -> str:
    """Classes and images per split of a prepared dataset, next to the standard split's counts."""
    manifest = json.loads((Path(root) / MANIFEST).read_text())
    lines = [f"Prepared {manifest['dataset']} ({manifest['source_format']}) in {root}:"]
    for split in SPLITS:
        entry = manifest["splits"][split]
        classes, images = len(entry["classes"]), entry["images"]
        note = (
            ""
            if (classes, images) == standard[split]
            else f"  (the standard split has {standard[split][0]} classes, {standard[split][1]} images)"
        )
        lines.append(f"  {split:>5}: {classes} classes, {images} images{note}")
    return "\n".join(lines)
