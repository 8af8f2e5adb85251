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
