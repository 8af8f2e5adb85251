"""Meta-batches prepared by background workers, yielded in step order.

Each step's tasks are addressed by index (step * meta_batch_size + offset ...), so workers never
draw the same task and the stream equals in-process sampling whatever the number of workers, and
whatever the number of steps drawn in one call.
"""

from __future__ import annotations

import random
import signal
from typing import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from conml.data.episode_source import EpisodeSource
from conml.episodes import EpisodeBatch, Tasks


class MetaBatches(Dataset):
    """Item `step` is the training meta-batch of that step (this process's share of it).

    `steps_per_draw` > 1 lets the in-process stream draw that many steps' tasks in one `sample`
    call (`blocks`), paying a sampler's fixed cost per call once per block.
    """

    def __init__(
        self,
        source: EpisodeSource,
        meta_batch_size: int,
        offset: int,
        count: int,
        first_step: int,
        last_step: int,
        steps_per_draw: int = 1,
    ):
        if steps_per_draw < 1:
            raise ValueError(f"steps_per_draw must be at least 1, got {steps_per_draw}")
        self.source, self.size, self.offset, self.count = source, meta_batch_size, offset, count
        self.first_step, self.last_step, self.steps_per_draw = first_step, last_step, steps_per_draw

    def __len__(self) -> int:
        return self.last_step - self.first_step

    def __getitem__(self, item: int) -> EpisodeBatch:
        step = self.first_step + item
        return self.source.sample("train", step * self.size + self.offset, self.count)

    def blocks(self) -> Iterator[EpisodeBatch]:
        """The meta-batches in order, drawn `steps_per_draw` steps at a time from `first_step` on."""
        for item in range(0, len(self), self.steps_per_draw):
            yield from self._block(item, min(self.steps_per_draw, len(self) - item))

    def _block(self, item: int, steps: int) -> list[EpisodeBatch]:
        """Items `item .. item + steps - 1` from one draw of `steps * meta_batch_size` tasks.

        A process's share of consecutive steps lies `meta_batch_size` tasks apart, so the draw also
        holds the other processes' tasks in between, which are dropped.
        """
        if steps == 1:
            return [self[item]]
        drawn = self.source.sample("train", (self.first_step + item) * self.size + self.offset, steps * self.size)
        support, query = self._per_step(drawn.support, steps), self._per_step(drawn.query, steps)
        return [EpisodeBatch(s, q, drawn.probe, dict(drawn.info)) for s, q in zip(support, query)]

    def _per_step(self, tasks: Tasks, steps: int) -> list[Tasks]:
        def split(tensor: Tensor | None) -> list[Tensor | None]:
            if tensor is None:
                return [None] * steps
            return list(tensor.unflatten(0, (steps, self.size))[:, : self.count].unbind(0))

        return [Tasks(x, y, mask) for x, y, mask in zip(split(tasks.x), split(tasks.y), split(tasks.mask))]


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
    """The meta-batches in order: sampled in this process (workers=0, in blocks of `steps_per_draw`
    steps) or by `workers` processes (one step per item)."""
    if workers == 0:
        return batches.blocks()
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
