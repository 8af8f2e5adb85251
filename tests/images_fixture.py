"""Tiny miniImageNet and tieredImageNet downloads in their real on-disk formats.

- miniImageNet, Ravi & Larochelle layout: `{train,val,test}.csv` (header `filename,label`) naming
  JPEGs in `images/`, stored at varied sizes as in the raw release (preparation resizes them).
- miniImageNet pickles: `mini-imagenet-cache-{train,val,test}.pkl`, dicts with `image_data`
  (uint8 [N, 84, 84, 3], classes interleaved) and `class_dict` ({wnid: [indices]}).
- tieredImageNet: `{split}_images_png.pkl`, a list of PNG-encoded uint8 arrays, and
  `{split}_labels.pkl` with `label_specific`, `label_specific_str`, `label_general`,
  `label_general_str`, as in Ren et al.'s release.

Every class has its own colour, so a learner can beat chance.
"""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from conml.data.images.miniimagenet import prepare_miniimagenet
from conml.data.images.tieredimagenet import prepare_tieredimagenet

SPLITS = ("train", "val", "test")
SIZE = 84


def class_images(split: str, label: int, count: int, size: int = SIZE) -> np.ndarray:
    """uint8 [count, size, size, 3]: a class colour plus noise, different in every split."""
    rng = np.random.default_rng([SPLITS.index(split), label])
    colour = rng.integers(30, 226, size=3)
    # Noise in 4x4 blocks: textured enough for JPEG/PNG, cheap to draw.
    noise = (
        rng.integers(-30, 31, size=(count, size // 4, size // 4, 3), dtype=np.int16).repeat(4, axis=1).repeat(4, axis=2)
    )
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def wnid(split: str, label: int) -> str:
    return f"n{SPLITS.index(split) + 1:02d}{label:06d}"


def write_mini_csv(root: Path, classes: dict[str, int], per_class: int) -> Path:
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    for split, count in classes.items():
        rows = []
        for label in range(count):
            for i, pixels in enumerate(class_images(split, label, per_class)):
                name = f"{wnid(split, label)}{i:08d}.jpg"
                side = (SIZE, 120, 97)[i % 3]  # raw downloads are not all 84x84
                Image.fromarray(pixels).resize((side, side)).save(images / name, quality=95)
                rows.append((name, wnid(split, label)))
        with open(root / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["filename", "label"])
            writer.writerows(rows)
    return root


def write_mini_pickles(root: Path, classes: dict[str, int], per_class: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, count in classes.items():
        stacked = np.stack([class_images(split, label, per_class) for label in range(count)])
        # Interleave the classes, so preparation has to regroup them through class_dict.
        image_data = stacked.transpose(1, 0, 2, 3, 4).reshape(-1, SIZE, SIZE, 3)
        class_dict = {wnid(split, label): list(range(label, len(image_data), count)) for label in range(count)}
        with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as handle:
            pickle.dump({"image_data": image_data, "class_dict": class_dict}, handle, protocol=4)
    return root


def write_tiered_pickles(root: Path, classes: dict[str, int], per_class: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, count in classes.items():
        # Classes interleaved, so preparation has to regroup them by label.
        labels = np.tile(np.arange(count), per_class)
        images = np.stack([class_images(split, label, per_class) for label in range(count)], axis=1).reshape(
            -1, SIZE, SIZE, 3
        )
        encoded = []
        for pixels in images:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
            encoded.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
        label_data = {
            "label_specific": labels,
            "label_specific_str": [wnid(split, label) for label in range(count)],
            "label_general": labels // 2,
            "label_general_str": [f"category{c}" for c in range((count + 1) // 2)],
        }
        with open(root / f"{split}_images_png.pkl", "wb") as handle:
            pickle.dump(encoded, handle, protocol=2)
        with open(root / f"{split}_labels.pkl", "wb") as handle:
            pickle.dump(label_data, handle, protocol=2)
    return root


# Enough for every preset's real episode shape: ProtoNet trains 30-way, and 5 shots + 15 queries
# per class are drawn at validation and test.
PRESET_CLASSES = {"train": 30, "val": 5, "test": 5}
PRESET_IMAGES_PER_CLASS = 20


def prepared_datasets(folder: Path, image_size: int) -> Path:
    """A data folder with both datasets prepared from their tiny downloads: <folder>/data/{mini,tiered}imagenet.

    Cached at `image_size` (below 84) so that CPU runs stay fast.
    """
    data = folder / "data"
    mini = write_mini_pickles(folder / "raw" / "miniimagenet", PRESET_CLASSES, PRESET_IMAGES_PER_CLASS)
    prepare_miniimagenet(mini, data / "miniimagenet", image_size=image_size)
    tiered = write_tiered_pickles(folder / "raw" / "tieredimagenet", PRESET_CLASSES, PRESET_IMAGES_PER_CLASS)
    prepare_tieredimagenet(tiered, data / "tieredimagenet", image_size=image_size)
    return data
