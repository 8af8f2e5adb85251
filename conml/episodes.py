"""Episodes: B tasks stacked on a leading task axis, split into support, query and subsets.

Every tensor here has shape [tasks, examples, ...]. Tasks of different sizes are padded to one
shape and carry a boolean `mask` [tasks, examples] that marks the real examples, so learners can
stay batched over tasks instead of looping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import Tensor


@dataclass(frozen=True)
class Tasks:
    """Labelled examples of a batch of tasks: x [B, n, *features], y [B, n, *targets]."""

    x: Tensor
    y: Tensor
    mask: Tensor | None = None

    @property
    def num_tasks(self) -> int:
        return self.x.shape[0]

    @property
    def num_examples(self) -> int:
        return self.x.shape[1]

    def to(self, device: torch.device | str) -> Tasks:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Tasks(move(self.x), move(self.y), move(self.mask))

    def pin_memory(self) -> Tasks:
        """Page-locked copies, so the copy to the GPU can overlap compute (used by DataLoader)."""
        pin = lambda t: None if t is None else t.pin_memory()  # noqa: E731
        return Tasks(pin(self.x), pin(self.y), pin(self.mask))

    def take(self, index: Tensor) -> Tasks:
        """Per-task example selection: index [B, m] of example positions within each task."""

        def gather(t: Tensor | None) -> Tensor | None:
            if t is None:
                return None
            shaped = index.reshape(*index.shape, *([1] * (t.dim() - 2)))
            return t.gather(1, shaped.expand(*index.shape, *t.shape[2:]))

        return Tasks(gather(self.x), gather(self.y), gather(self.mask))

    def first(self, count: int) -> Tasks:
        """The first `count` examples of every task (a prompt prefix)."""
        cut = lambda t: None if t is None else t[:, :count]  # noqa: E731
        return Tasks(cut(self.x), cut(self.y), cut(self.mask))

    @staticmethod
    def cat(a: Tasks, b: Tasks) -> Tasks:
        """Examples of `a` followed by those of `b`, task by task."""
        if (a.mask is None) != (b.mask is None):
            ones = lambda t: torch.ones(t.x.shape[:2], dtype=torch.bool, device=t.x.device)  # noqa: E731
            a_mask, b_mask = (a.mask if a.mask is not None else ones(a)), (b.mask if b.mask is not None else ones(b))
        else:
            a_mask, b_mask = a.mask, b.mask
        mask = None if a_mask is None else torch.cat([a_mask, b_mask], 1)
        return Tasks(torch.cat([a.x, b.x], 1), torch.cat([a.y, b.y], 1), mask)


@dataclass(frozen=True)
class EpisodeBatch:
    """One meta-batch: each task's support (training) and query (validation) sets.

    `probe` is an input shared by every task of the batch, used by learners whose task model is
    represented by its prediction at a common point (in-context learners).
    """

    support: Tasks
    query: Tasks
    probe: Tensor | None = None
    info: dict = field(default_factory=dict)

    @property
    def num_tasks(self) -> int:
        return self.support.num_tasks

    @cached_property
    def whole(self) -> Tasks:
        """Support ∪ query: all the data there is about each task."""
        return Tasks.cat(self.support, self.query)

    def to(self, device: torch.device | str) -> EpisodeBatch:
        probe = None if self.probe is None else self.probe.to(device, non_blocking=True)
        return EpisodeBatch(self.support.to(device), self.query.to(device), probe, self.info)

    def pin_memory(self) -> EpisodeBatch:
        probe = None if self.probe is None else self.probe.pin_memory()
        return EpisodeBatch(self.support.pin_memory(), self.query.pin_memory(), probe, self.info)
