"""N-way K-shot episodes from a prepared miniImageNet or tieredImageNet cache (an EpisodeSource)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from conml.build import resolve_device
from conml.data.images.augment import Augmentation
from conml.data.images.cache import DATASETS, SPLITS, ImageSplit, read_split
from conml.data.images.sampler import EpisodeShape, draw_episode
from conml.data.images.synthetic import SyntheticImages, synthetic_split
from conml.data.seeding import episode_rng
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.task_kind import CLASSIFICATION

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FewShotImages:
    """Few-shot classification episodes; task i of a split is drawn by the generator of (seed, split, i).

    That generator picks the classes (and so the episode's label map), the images, their order and
    any augmentation, so validation and test sets are fixed whatever the batch size. The `train_*`
    settings apply to the train split only: ProtoNet trains with more ways than it is tested
    with, Reptile adapts on more shots. Images stay uint8 until they are on `device`, where they
    are augmented (train split only), scaled and normalised. With `preload` each split is copied
    to `device` (on a GPU: into GPU memory) when first used; otherwise every episode is gathered
    from the memory-mapped cache on the host and only its images are copied. With `synthetic`,
    no cache is read: seeded synthetic images with the standard split's classes and images stand in
    for it (`conml.data.images.synthetic`; for machine checks and memory plans, never for results).
    """

    kind = CLASSIFICATION

    def __init__(
        self,
        root: str,
        name: str,
        ways: int = 5,
        shots: int = 1,
        queries: int = 15,
        train_ways: Optional[int] = None,
        train_shots: Optional[int] = None,
        train_queries: Optional[int] = None,
        augmentation: Optional[Augmentation] = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        device: str = "cpu",
        preload: bool = False,
        verify: bool = True,
        seed: int = 0,
        synthetic: bool = False,
    ):
        if name not in DATASETS:
            raise ConfigError(f"dataset.name must be one of {list(DATASETS)}, got '{name}'.")
        self.name, self.seed, self.augmentation, self.preload = name, seed, augmentation, preload
        self.ways, self.shots, self.queries = ways, shots, queries
        self.train_shape = EpisodeShape(train_ways or ways, train_shots or shots, train_queries or queries)
        self.device = resolve_device(device)
        self.mean = torch.tensor(tuple(mean), device=self.device).view(3, 1, 1)
        self.std = torch.tensor(tuple(std), device=self.device).view(3, 1, 1)
        if synthetic:
            self.splits: dict[str, ImageSplit] = {split: synthetic_split(name, split, seed) for split in SPLITS}
        else:
            self.splits = {split: read_split(Path(root), name, split, verify) for split in SPLITS}
        self.offsets = {split: data.offsets for split, data in self.splits.items()}
        for split in SPLITS:
            self._shape(split).check(self.splits[split].counts, f"dataset {name}, {split} split")
        self._stored: dict[str, Tensor] = {}

    def _shape(self, split: str, shots: int | None = None, queries: int | None = None) -> EpisodeShape:
        base = self.train_shape if split == "train" else EpisodeShape(self.ways, self.shots, self.queries)
        return EpisodeShape(base.ways, shots or base.shots, queries or base.queries)

    def sample(
        self, split: str, first: int, count: int, shots: int | None = None, queries: int | None = None
    ) -> EpisodeBatch:
        shape = self._shape(split, shots, queries)
        data = self.splits[split]
        if shots or queries:
            shape.check(data.counts, f"dataset {self.name}, {split} split (eval.shots / eval.queries)")
        augment = self.augmentation if split == "train" else None
        size = shape.ways * (shape.shots + shape.queries)
        indices, labels, params = [], [], []
        for index in range(first, first + count):
            rng = episode_rng(self.seed, split, index)
            episode = draw_episode(rng, self.offsets[split], data.counts, shape)
            indices.append(np.concatenate([episode.support, episode.query]))
            labels.append(np.concatenate([episode.support_labels, episode.query_labels]))
            if augment is not None:
                params.append(augment.draw(rng, size))
        pixels = self._gather(split, np.concatenate(indices))
        if augment is not None:
            pixels = augment.apply(pixels, {key: np.concatenate([p[key] for p in params]) for key in params[0]})
        x = self._normalise(pixels).unflatten(0, (count, size))
        y = torch.from_numpy(np.stack(labels)).to(self.device)
        cut = shape.ways * shape.shots
        return EpisodeBatch(Tasks(x[:, :cut], y[:, :cut]), Tasks(x[:, cut:], y[:, cut:]))

    def _normalise(self, pixels: Tensor) -> Tensor:
        """Pixels [N, S, S, 3] in 0..255 -> normalised float [N, 3, S, S]: one converting copy, then in place."""
        count, height, width, channels = pixels.shape
        images = torch.empty((count, channels, height, width), device=pixels.device).copy_(pixels.permute(0, 3, 1, 2))
        return images.div_(255.0).sub_(self.mean).div_(self.std)

    def _gather(self, split: str, indices: np.ndarray) -> Tensor:
        """uint8 images [len(indices), S, S, 3] on the episode device."""
        if not self.preload:
            return torch.from_numpy(self.splits[split].images[indices]).to(self.device, non_blocking=True)
        if split not in self._stored:
            images = self.splits[split].images
            synthetic = isinstance(images, SyntheticImages)  # drawn on the device: nothing to copy
            self._stored[split] = (
                images.to(self.device) if synthetic else torch.from_numpy(np.array(images)).to(self.device)
            )
        return self._stored[split][torch.from_numpy(indices).to(self.device)]
