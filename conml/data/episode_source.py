"""The interface every task family offers the trainer and the evaluator."""

from __future__ import annotations

from typing import Protocol

from conml.episodes import EpisodeBatch
from conml.task_kind import TaskKind


class EpisodeSource(Protocol):
    """Draws batches of tasks; task `i` of a split is the same whatever batch it is drawn in."""

    kind: TaskKind
    shots: int

    def sample(
        self, split: str, first: int, count: int, shots: int | None = None, queries: int | None = None
    ) -> EpisodeBatch:
        """Tasks `first .. first + count - 1` of `split`; `shots`/`queries` override the defaults."""
        ...


def steps_per_draw(source: EpisodeSource) -> int:
    """Training steps whose tasks the in-process stream draws in one `sample` call (conml/data/prefetch.py).

    A source declares `steps_per_draw` when its meta-batches are tiny and cost mostly per call; any
    other draws one step at a time (an 84-px image meta-batch is hundreds of MB, a block of them would not fit).
    """
    return getattr(source, "steps_per_draw", 1)
