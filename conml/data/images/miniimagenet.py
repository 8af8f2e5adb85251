"""miniImageNet (Vinyals et al. 2016, with Ravi & Larochelle's 64/16/20-class split) into the cache.

Either of the two layouts people have is accepted in the source folder:

- the Ravi & Larochelle split files `train.csv`, `val.csv`, `test.csv` (header `filename,label`)
  with the images they name in `images/` (JPEG of any size; resized to 84x84);
- the pickles `mini-imagenet-cache-{train,val,test}.pkl` (the val file may also be called
  `...-validation.pkl`): dicts with `image_data` (uint8 [N, 84, 84, 3]) and `class_dict`
  ({class name: [indices into image_data]}).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

import numpy as np

from conml.data.images.cache import IMAGE_SIZE, SPLITS, CacheWriter
from conml.data.images.decode import decode_all, resize
from conml.data.images.pickles import load_pickle, require_keys
from conml.errors import DataError

NAME = "miniimagenet"
# (classes, images) per split of the standard dataset.
STANDARD = {"train": (64, 38400), "val": (16, 9600), "test": (20, 12000)}
_PICKLE_SPLIT_NAMES = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}

LAYOUTS = """\
  (a) Ravi & Larochelle CSVs:  SOURCE/train.csv, SOURCE/val.csv, SOURCE/test.csv (header `filename,label`)
      and SOURCE/images/<filename> for every row (JPEG, any size)
  (b) pickles:                 SOURCE/mini-imagenet-cache-train.pkl, SOURCE/mini-imagenet-cache-val.pkl
      (or -validation.pkl), SOURCE/mini-imagenet-cache-test.pkl"""


def prepare_miniimagenet(source: Path, out: Path, workers: int = 1, image_size: int = IMAGE_SIZE) -> None:
    """Convert a miniImageNet download in `source` (either layout) into the cache in `out`."""
    source, out = Path(source), Path(out)
    pickles = {split: _pickle_path(source, split) for split in SPLITS}
    if all((source / f"{split}.csv").is_file() for split in SPLITS):
        writer = CacheWriter(out, NAME, "ravi-larochelle-csv", image_size)
        for split in SPLITS:
            _write_csv_split(writer, source, split, workers)
    elif all(pickles.values()):
        writer = CacheWriter(out, NAME, "mini-imagenet-cache-pickle", image_size)
        for split in SPLITS:
            _write_pickle_split(writer, pickles[split], split)
    else:
        found = ", ".join(sorted(p.name for p in source.iterdir())[:12]) if source.is_dir() else "the folder does not exist"
        raise DataError(f"{source} holds neither miniImageNet layout (found: {found}). Expected one of:\n{LAYOUTS}")
    writer.finish()


def _pickle_path(source: Path, split: str) -> Path | None:
    for name in _PICKLE_SPLIT_NAMES[split]:
        path = source / f"mini-imagenet-cache-{name}.pkl"
        if path.is_file():
            return path
    return None


def _read_split_csv(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or [cell.strip() for cell in rows[0]] != ["filename", "label"]:
        raise DataError(f"{path} does not start with the header `filename,label` of the Ravi & Larochelle split files.")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise DataError(f"{path}, line {line}: expected `filename,label`, found {row}.")
    return [(filename.strip(), label.strip()) for filename, label in rows[1:]]


def _write_csv_split(writer: CacheWriter, source: Path, split: str, workers: int) -> None:
    csv_path = source / f"{split}.csv"
    rows = _read_split_csv(csv_path)
    classes = sorted({label for _, label in rows})
    files = {c: [f for f, label in rows if label == c] for c in classes}
    folder = source / "images"
    missing = [f for f, _ in rows if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of the {len(rows)} images listed in {csv_path} are missing from {folder} "
            f"(e.g. {', '.join(missing[:3])}): the download is partial. Unpack all images into {folder}."
        )
    items = ((str(folder / f), str(folder / f)) for c in classes for f in files[c])
    writer.write_split(split, classes, [len(files[c]) for c in classes], decode_all(items, writer.image_size, workers))


def _write_pickle_split(writer: CacheWriter, path: Path, split: str) -> None:
    data = require_keys(load_pickle(path), ("image_data", "class_dict"), path)
    images = np.asarray(data["image_data"])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise DataError(f"{path}: image_data is {images.dtype} {images.shape}, expected uint8 [N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3].")
    class_dict = {str(name): np.asarray(indices, dtype=np.int64) for name, indices in data["class_dict"].items()}
    classes = sorted(class_dict)
    for name in classes:
        indices = class_dict[name]
        if indices.size == 0 or indices.min() < 0 or indices.max() >= len(images):
            raise DataError(f"{path}: class_dict['{name}'] holds indices outside image_data (which has {len(images)} images).")

    def ordered() -> Iterator[np.ndarray]:
        for name in classes:
            for image in images[class_dict[name]]:
                yield resize(image, writer.image_size)

    writer.write_split(split, classes, [class_dict[c].size for c in classes], ordered())
