"""Seeded synthetic images of a dataset's real shapes, drawn without any file (`dataset.synthetic=true`).

For checking a machine (`make gpu-check`) and planning memory (`make memory-plan`) where the dataset
is not prepared; never for results. A synthetic split stands in for the prepared uint8 array
[images, S, S, 3]: it has the real split's classes and images per class, and row r (an image of
class c) is class c's colour plus one of a small seeded bank of noise patterns, so a learner can
tell classes apart and every episode sampler, gather and normalisation runs unchanged. Nothing is
stored per image: a split of a million images costs one noise bank (256 images).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from conml.data.images import miniimagenet, tieredimagenet
from conml.data.images.cache import IMAGE_SIZE, SPLITS, ImageSplit

BANK = 256  # noise patterns per split
NOISE = 64  # noise amplitude; colours stay below 256 - NOISE, so no pixel overflows
_ROW_MIX = 2654435761  # Knuth's multiplicative hash: consecutive rows get unrelated patterns
# (classes, images) of each split of the real datasets.
STANDARD = {miniimagenet.NAME: miniimagenet.STANDARD, tieredimagenet.NAME: tieredimagenet.STANDARD}


class SyntheticImages:
    """A read-only stand-in for a uint8 image array [sum(counts), size, size, 3], class by class.

    Indexing with a numpy array of rows gives a numpy array (as a memory map would); with a torch
    tensor of rows, a tensor on that tensor's device (after `to(device)`: a GPU-resident split).
    """

    def __init__(self, counts: np.ndarray, image_size: int, seed: int, stream: int = 0):
        rng = np.random.default_rng([seed, stream, 0x5E7])
        self.counts = np.asarray(counts, dtype=np.int64)
        self.shape = (int(self.counts.sum()), image_size, image_size, 3)
        self.dtype = np.dtype(np.uint8)
        self.ends = torch.from_numpy(np.cumsum(self.counts))
        self.colours = torch.from_numpy(rng.integers(0, 256 - NOISE, (len(self.counts), 3), dtype=np.uint8))
        self.noise = torch.from_numpy(rng.integers(0, NOISE, (BANK, image_size, image_size, 3), dtype=np.uint8))

    def __len__(self) -> int:
        return self.shape[0]

    def to(self, device: torch.device | str) -> SyntheticImages:
        """The same images, drawn on `device` (what `preload` does with a prepared split)."""
        moved = object.__new__(SyntheticImages)
        moved.__dict__.update(self.__dict__)
        moved.ends, moved.colours, moved.noise = (t.to(device) for t in (self.ends, self.colours, self.noise))
        return moved

    def __getitem__(self, rows: np.ndarray | Tensor) -> np.ndarray | Tensor:
        if isinstance(rows, Tensor):
            return self._draw(rows.to(self.noise.device))
        return self._draw(torch.from_numpy(np.asarray(rows, dtype=np.int64))).numpy()

    def _draw(self, rows: Tensor) -> Tensor:
        classes = torch.searchsorted(self.ends, rows, right=True)
        pattern = (rows * _ROW_MIX) % BANK
        return self.noise[pattern] + self.colours[classes][:, None, None, :]


def synthetic_split(dataset: str, split: str, seed: int, image_size: int = IMAGE_SIZE) -> ImageSplit:
    """A synthetic `split` of `dataset` with its standard classes and images (evened out over the classes)."""
    classes, images = STANDARD[dataset][split]
    counts = np.full(classes, images // classes, dtype=np.int64)
    counts[: images % classes] += 1
    pixels = SyntheticImages(counts, image_size, seed, SPLITS.index(split))
    return ImageSplit(pixels, tuple(f"synthetic-{c}" for c in range(classes)), counts)  # type: ignore[arg-type]  # indexed like the uint8 array
