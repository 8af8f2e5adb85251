"""Meta-batches prepared by background workers, yielded in step order.

Each step's tasks are addressed by index (step * meta_batch_size + offset ...), so workers never
draw the same task and the stream equals in-process sampling whatever the number of workers.
"""

from __future__ import annotations

import random
import signal
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from conml.data.episode_source import EpisodeSource
from conml.episodes import EpisodeBatch


class MetaBatches(Dataset):
    """Item `step` is the training meta-batch of that step (this process's share of it)."""

    def __init__(
        self, source: EpisodeSource, meta_batch_size: int, offset: int, count: int, first_step: int, last_step: int
    ):
        self.source, self.size, self.offset, self.count = source, meta_batch_size, offset, count
        self.first_step, self.last_step = first_step, last_step

    def __len__(self) -> int:
        return self.last_step - self.first_step

    def __getitem__(self, item: int) -> EpisodeBatch:
        step = self.first_step + item
        return self.source.sample("train", step * self.size + self.offset, self.count)


def _seed_worker(worker_id: int) -> None:
    """Give Python's and NumPy's global RNGs the worker's own torch seed, so no two workers share a stream.

    Workers ignore Ctrl-C, which a terminal sends to every process: the training process checkpoints
    at the end of its step and then stops them.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def meta_batch_stream(batches: MetaBatches, workers: int, pin_memory: bool) -> Iterator[EpisodeBatch]:
    """The meta-batches in order: sampled in this process (workers=0) or by `workers` processes."""
    if workers == 0:
        return (batches[i] for i in range(len(batches)))
    loader = DataLoader(
        batches,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker,
        prefetch_factor=4,
    )
    return iter(loader)
