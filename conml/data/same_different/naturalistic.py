"""Naturalistic same-different from a folder of single-object photographs (e.g. Brady et al. 2008).

The objects are not redistributable, so the user provides them. Objects are split 70/15/15 into
disjoint train/val/test pools. Each episode picks one reference object; a "same" image shows it
twice, a "different" image shows it next to another object of the same pool. Every instance is
resized to 50x50, rotated by U(0, 360) degrees with the canvas expanded, and pasted at a random
place in the left (reference) or right half of a white 128x128 canvas (Gupta et al.'s builder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from conml.data.seeding import SPLITS
from conml.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)


class ObjectPairs:
    """Pairs of object photographs; the split of objects is fixed by `seed`."""

    def __init__(self, root: str | Path, seed: int = 0, object_size: int = 50):
        self.root, self.object_size = Path(root), object_size
        self._resized: dict[Path, Image.Image] = {}
        files = (
            sorted(p for p in self.root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if self.root.is_dir() else []
        )
        order = np.random.default_rng(np.random.SeedSequence([seed, 0x0B1EC7])).permutation(len(files))
        cuts = np.cumsum([int(round(f * len(files))) for f in SPLIT_FRACTIONS[:-1]])
        self.pools = {split: [files[i] for i in part] for split, part in zip(SPLITS, np.split(order, cuts))}
        if min(len(pool) for pool in self.pools.values()) < 2:
            found = (
                f"it holds {len(files)} image files ({', '.join(IMAGE_SUFFIXES)})"
                if self.root.is_dir()
                else "that folder does not exist"
            )
            raise DataError(
                f"The naturalistic same-different task needs a folder of object photographs at {self.root}, "
                f"with at least 14 images so that each of the train/val/test pools (70/15/15% of the objects) "
                f"holds two objects; {found}. Layout: "
                f"{self.root}/<object>.jpg, one object per image on a white background, e.g. the Brady et al. "
                "(2008) 'unique objects' set (download it yourself from the authors' stimulus page; it may not be "
                "redistributed). Point dataset.objects_root at another folder if yours lives elsewhere."
            )

    def _object(self, path: Path) -> Image.Image:
        """The object resized to object_size x object_size, loaded once."""
        if path not in self._resized:
            try:
                with Image.open(path) as image:
                    size = (self.object_size, self.object_size)
                    self._resized[path] = image.convert("RGBA").resize(size, Image.Resampling.BILINEAR)
            except OSError as error:
                raise DataError(f"Object image {path} cannot be read ({error}); replace or remove that file.") from None
        return self._resized[path]

    def _paste(self, canvas: Image.Image, rng: np.random.Generator, path: Path, half: int) -> None:
        instance = self._object(path).rotate(float(rng.uniform(0, 360)), Image.Resampling.BILINEAR, expand=True)
        width, height = instance.size
        left = half * 64 + (int(rng.integers(0, 64 - width + 1)) if width <= 64 else (64 - width) // 2)
        top = int(rng.integers(0, 128 - height + 1))
        canvas.paste(instance, (left, top), instance)

    def episode_images(self, rng: np.random.Generator, split: str, labels: Sequence[int]) -> np.ndarray:
        pool = self.pools[split]
        reference = int(rng.integers(len(pool)))
        images = []
        for label in labels:
            other = reference if label else (reference + 1 + int(rng.integers(len(pool) - 1))) % len(pool)
            canvas = Image.new("RGB", (128, 128), (255, 255, 255))
            self._paste(canvas, rng, pool[reference], half=0)
            self._paste(canvas, rng, pool[other], half=1)
            images.append(np.asarray(canvas))
        return np.stack(images)
