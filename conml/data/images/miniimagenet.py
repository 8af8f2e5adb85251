"""miniImageNet (Vinyals et al. 2016, with Ravi & Larochelle's 64/16/20-class split) into the cache.

Either of the two layouts people have is accepted in the source folder:

- the Ravi & Larochelle split files `train.csv`, `val.csv`, `test.csv` (header `filename,label`)
  with the images they name in `images/` (JPEG of any size; resized to 84x84), or in per-class
  folders `images/<label>/` or `<split>/<label>/` (where Finn et al.'s `proc_images.py` moves them);
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
      and, for every row, SOURCE/images/<filename> (JPEG, any size), or the same file in a per-class folder:
      SOURCE/images/<label>/<filename> or SOURCE/<split>/<label>/<filename> (after Finn et al.'s proc_images.py)
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
        found = (
            ", ".join(sorted(p.name for p in source.iterdir())[:12]) if source.is_dir() else "the folder does not exist"
        )
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
    found = {(f, label): _find_image(source, split, f, label) for f, label in rows}
    missing = [f for (f, _), path in found.items() if path is None]
    if missing:
        raise DataError(_missing_images_message(source, split, csv_path, len(rows), missing))
    paths = {c: [str(found[f, label]) for f, label in rows if label == c] for c in classes}
    items = ((path, path) for c in classes for path in paths[c])
    writer.write_split(split, classes, [len(paths[c]) for c in classes], decode_all(items, writer.image_size, workers))


def _find_image(source: Path, split: str, filename: str, label: str) -> Path | None:
    """Where an image the CSV names is: flat in images/, or in its class folder under images/ or <split>/."""
    for path in (source / "images" / filename, source / "images" / label / filename, source / split / label / filename):
        if path.is_file():
            return path
    return None


def _missing_images_message(source: Path, split: str, csv_path: Path, listed: int, missing: list[str]) -> str:
    """Why images the CSV names are not found: a partial download, or per-class folders of another release."""
    where = (
        f"{source / 'images'}/<filename>, {source / 'images'}/<label>/<filename> or {source / split}/<label>/<filename>"
    )
    head = f"{len(missing)} of the {listed} images listed in {csv_path} are missing (e.g. {', '.join(missing[:3])}; looked for {where})"
    class_folders = [
        p for base in (source / "images", source / split) if base.is_dir() for p in sorted(base.iterdir()) if p.is_dir()
    ]
    if len(missing) < listed or not class_folders:
        return f"{head}: the download is partial. Unpack all images of the Ravi & Larochelle images.zip into {source / 'images'}."
    example = next(
        (f"{folder.name}/{files[0].name}" for folder in class_folders if (files := sorted(folder.iterdir()))),
        f"{class_folders[0].name}/",
    )
    return (
        f"{head}. {class_folders[0].parent} holds per-class folders (<wnid>/<file>, e.g. {example}), but none of them "
        "holds a file the split files name: this is another release of miniImageNet, whose images were selected or "
        "renamed differently and cannot be matched to the Ravi & Larochelle split. (Per-class folders whose files keep "
        "the names in the CSVs, as Finn et al.'s proc_images.py leaves them, are read as they are.) Use the images.zip "
        f"released with the split files, unpacked into {source / 'images'} (layout (a)), or the mini-imagenet-cache "
        "pickles (layout (b)); docs/datasets_imagenet.md says where to get them."
    )


def _write_pickle_split(writer: CacheWriter, path: Path, split: str) -> None:
    data = require_keys(load_pickle(path), ("image_data", "class_dict"), path)
    images = np.asarray(data["image_data"])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise DataError(
            f"{path}: image_data is {images.dtype} {images.shape}, expected uint8 [N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3]."
        )
    class_dict = {str(name): np.asarray(indices, dtype=np.int64) for name, indices in data["class_dict"].items()}
    classes = sorted(class_dict)
    for name in classes:
        indices = class_dict[name]
        if indices.size == 0 or indices.min() < 0 or indices.max() >= len(images):
            raise DataError(
                f"{path}: class_dict['{name}'] holds indices outside image_data (which has {len(images)} images)."
            )

    def ordered() -> Iterator[np.ndarray]:
        for name in classes:
            for image in images[class_dict[name]]:
                yield resize(image, writer.image_size)

    writer.write_split(split, classes, [class_dict[c].size for c in classes], ordered())
