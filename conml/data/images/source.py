"""N-way K-shot episodes from a prepared image cache: miniImageNet, tieredImageNet, Omniglot (an EpisodeSource)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from conml.build import resolve_device
from conml.data.episode_source import EpisodeSource
from conml.data.images.augment import Augmentation
from conml.data.images.cache import DATASETS, SPLITS, ImageSplit, read_split
from conml.data.images.sampler import EpisodeShape, draw_episode
from conml.data.images.synthetic import STANDARD as SYNTHETIC
from conml.data.images.synthetic import SyntheticImages, synthetic_split
from conml.data.seeding import episode_rng
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.task_kind import CLASSIFICATION

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FewShotImages(EpisodeSource):
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
    With `rotations=4` every class also appears turned by 90, 180 and 270 degrees as three more
    classes (Omniglot's augmentation, Santoro et al. 2016): class r*C + c of a split of C classes is
    class c turned r quarter-turns counter-clockwise, in every split.
    """

    kind = CLASSIFICATION

    def __init__(
        self,
        root: str,
        name: str,
        ways: int,
        shots: int,
        queries: int,
        train_ways: Optional[int],
        train_shots: Optional[int],
        train_queries: Optional[int],
        augmentation: Optional[Augmentation],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: str,
        preload: bool,
        verify: bool,
        seed: int,
        synthetic: bool,
        rotations: int,
    ):
        if name not in DATASETS:
            raise ConfigError(f"dataset.name must be one of {list(DATASETS)}, got '{name}'.")
        if rotations not in (1, 2, 3, 4):
            raise ConfigError(
                f"dataset.rotations must be 1 (no rotated classes) to 4 (0, 90, 180 and 270 degrees), got {rotations}."
            )
        if synthetic and name not in SYNTHETIC:
            raise ConfigError(
                f"dataset.synthetic=true has no stand-in for {name} (only for {list(SYNTHETIC)}); prepare the dataset instead."
            )
        if len(mean) != len(std):
            raise ConfigError(
                f"dataset.mean and dataset.std need one value per channel, got {list(mean)} and {list(std)}."
            )
        self.rotations = rotations
        self.name, self.seed, self.augmentation, self.preload = name, seed, augmentation, preload
        self.ways, self.shots, self.queries = ways, shots, queries
        self.train_shape = EpisodeShape(train_ways or ways, train_shots or shots, train_queries or queries)
        self.device = resolve_device(device)
        self.mean = torch.tensor(tuple(mean), device=self.device).view(-1, 1, 1)
        self.std = torch.tensor(tuple(std), device=self.device).view(-1, 1, 1)
        if synthetic:
            self.splits: dict[str, ImageSplit] = {split: synthetic_split(name, split, seed) for split in SPLITS}
        else:
            self.splits = {split: read_split(Path(root), name, split, verify) for split in SPLITS}
        channels = self.splits["train"].images.shape[3]
        if len(mean) != channels:
            raise ConfigError(
                f"dataset.mean and dataset.std have {len(mean)} values, but the {name} images have {channels} "
                f"channel(s); give one value per channel (e.g. dataset.mean=[{', '.join(['0.0'] * channels)}])."
            )
        # Rotated classes share their images: class r*C + c reads class c's rows.
        self.offsets = {split: np.tile(data.offsets, rotations) for split, data in self.splits.items()}
        self.counts = {split: np.tile(data.counts, rotations) for split, data in self.splits.items()}
        for split in SPLITS:
            self._shape(split).check(self.counts[split], f"dataset {name}, {split} split")
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
            shape.check(self.counts[split], f"dataset {self.name}, {split} split (eval.shots / eval.queries)")
        augment = self.augmentation if split == "train" else None
        size = shape.ways * (shape.shots + shape.queries)
        indices, labels, turns, params = [], [], [], []
        classes = len(data.counts)
        for index in range(first, first + count):
            rng = episode_rng(self.seed, split, index)
            episode = draw_episode(rng, self.offsets[split], self.counts[split], shape)
            indices.append(np.concatenate([episode.support, episode.query]))
            labels.append(np.concatenate([episode.support_labels, episode.query_labels]))
            turns.append(episode.classes[labels[-1]] // classes)
            if augment is not None:
                params.append(augment.draw(rng, size))
        pixels = self._gather(split, np.concatenate(indices))
        if self.rotations > 1:
            pixels = _turn(pixels, np.concatenate(turns))
        if augment is not None:
            pixels = augment.apply(pixels, {key: np.concatenate([p[key] for p in params]) for key in params[0]})
        x = self.normalise(pixels).unflatten(0, (count, size))
        y = torch.from_numpy(np.stack(labels)).to(self.device)
        cut = shape.ways * shape.shots
        return EpisodeBatch(Tasks(x[:, :cut], y[:, :cut]), Tasks(x[:, cut:], y[:, cut:]))

    def normalise(self, pixels: Tensor) -> Tensor:
        """Pixels [N, S, S, C] in 0..255 -> normalised float [N, C, S, S]: one converting copy, then in place."""
        count, height, width, channels = pixels.shape
        images = torch.empty((count, channels, height, width), device=pixels.device).copy_(pixels.permute(0, 3, 1, 2))
        return images.div_(255.0).sub_(self.mean).div_(self.std)

    def _gather(self, split: str, indices: np.ndarray) -> Tensor:
        """uint8 images [len(indices), S, S, C] on the episode device."""
        if not self.preload:
            return torch.from_numpy(self.splits[split].images[indices]).to(self.device, non_blocking=True)
        if split not in self._stored:
            images = self.splits[split].images
            synthetic = isinstance(images, SyntheticImages)  # drawn on the device: nothing to copy
            self._stored[split] = (
                images.to(self.device) if synthetic else torch.from_numpy(np.array(images)).to(self.device)
            )
        return self._stored[split][torch.from_numpy(indices).to(self.device)]


def _turn(pixels: Tensor, turns: np.ndarray) -> Tensor:
    """Image i of [N, S, S, C] turned turns[i] quarter-turns counter-clockwise (as PIL's rotate by 90 * turns[i])."""
    out = pixels.clone()
    for turn in np.unique(turns[turns > 0]):
        rows = torch.from_numpy(np.flatnonzero(turns == turn)).to(pixels.device)
        out[rows] = torch.rot90(pixels[rows], int(turn), dims=(1, 2))
    return out
