"""tieredImageNet (Ren et al. 2018; 351/97/160 classes) into the cache.

The widely shared layout (Ren et al.'s release, also used by learn2learn) is accepted in the source
folder or in its `tiered-imagenet/` subfolder:

- `{train,val,test}_images_png.pkl`: a list of PNG-encoded 84x84 images (bytes or uint8 arrays);
- `{train,val,test}_labels.pkl`: a dict with `label_specific` (the class index of every image) and
  optionally `label_specific_str` (the class names).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conml.data.images.cache import IMAGE_SIZE, SPLITS, CacheWriter
from conml.data.images.decode import decode_all
from conml.data.images.pickles import load_pickle, require_keys
from conml.errors import DataError

NAME = "tieredimagenet"
# (classes, images) per split of the standard dataset.
STANDARD = {"train": (351, 448695), "val": (97, 124261), "test": (160, 206209)}

LAYOUTS = """\
  SOURCE/train_images_png.pkl, SOURCE/train_labels.pkl, SOURCE/val_images_png.pkl, SOURCE/val_labels.pkl,
  SOURCE/test_images_png.pkl, SOURCE/test_labels.pkl   (or the same under SOURCE/tiered-imagenet/)"""


def prepare_tieredimagenet(source: Path, out: Path, workers: int = 1, image_size: int = IMAGE_SIZE) -> None:
    """Convert a tieredImageNet download in `source` into the cache in `out`."""
    folder = _source_folder(Path(source))
    writer = CacheWriter(Path(out), NAME, "tiered-imagenet-png-pickle", image_size)
    for split in SPLITS:
        _write_split(writer, folder, split, workers)
    writer.finish()


def _source_folder(source: Path) -> Path:
    for folder in (source, source / "tiered-imagenet"):
        if all((folder / f"{s}_images_png.pkl").is_file() and (folder / f"{s}_labels.pkl").is_file() for s in SPLITS):
            return folder
    found = ", ".join(sorted(p.name for p in source.iterdir())[:12]) if source.is_dir() else "the folder does not exist"
    raise DataError(f"{source} does not hold the tieredImageNet pickles (found: {found}). Expected:\n{LAYOUTS}")


def _write_split(writer: CacheWriter, folder: Path, split: str, workers: int) -> None:
    labels_path, images_path = folder / f"{split}_labels.pkl", folder / f"{split}_images_png.pkl"
    label_data = require_keys(load_pickle(labels_path), ("label_specific",), labels_path)
    labels = np.asarray(label_data["label_specific"]).astype(np.int64).reshape(-1)
    encoded = load_pickle(images_path)
    if not isinstance(encoded, (list, tuple, np.ndarray)) or len(encoded) != len(labels):
        size = len(encoded) if hasattr(encoded, "__len__") else "no"
        raise DataError(
            f"{images_path} holds {size} images but {labels_path} labels {len(labels)}; the two files do not belong together."
        )
    classes, counts = np.unique(labels, return_counts=True)
    names = _class_names(label_data, classes)
    # Images are written class by class; a stable sort keeps each class in its original order.
    order = np.argsort(labels, kind="stable")
    items = ((_as_bytes(encoded[i]), f"{images_path} [image {i}]") for i in order)
    writer.write_split(split, names, counts.tolist(), decode_all(items, writer.image_size, workers))


def _class_names(label_data: dict, classes: np.ndarray) -> list[str]:
    """Names from `label_specific_str` where it covers every class, else the class indices."""
    names = label_data.get("label_specific_str")
    if names is not None and len(names) > int(classes.max()):
        return [n.decode() if isinstance(n, bytes) else str(n) for n in (names[int(c)] for c in classes)]
    return [f"class_{int(c):04d}" for c in classes]


def _as_bytes(item: object) -> bytes:
    return item if isinstance(item, bytes) else np.asarray(item, dtype=np.uint8).tobytes()
