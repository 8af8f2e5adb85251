"""The interface every task family offers the trainer and the evaluator, with its optional parts declared."""

from __future__ import annotations

from abc import ABC, abstractmethod

from conml.episodes import EpisodeBatch
from conml.task_kind import TaskKind


class EpisodeSource(ABC):
    """Draws batches of tasks; task `i` of a split is the same whatever batch it is drawn in.

    Every source derives from this class, so what it may leave out has a default here, not a guess
    at the call site.
    """

    kind: TaskKind
    shots: int | None
    # Training steps whose tasks the in-process stream draws in one `sample` call (conml/data/prefetch.py).
    # A source raises it when its meta-batches are tiny and cost mostly per call; the rest draw one step
    # at a time (an 84-px image meta-batch is hundreds of MB, a block of them would not fit).
    steps_per_draw: int = 1

    @abstractmethod
    def sample(
        self, split: str, first: int, count: int, shots: int | None = None, queries: int | None = None
    ) -> EpisodeBatch:
        """Tasks `first .. first + count - 1` of `split`; `shots`/`queries` override the defaults."""

    def test_sets(self) -> dict[str, EpisodeSource] | None:
        """Named test sets, each meta-tested on its own (one per Meta-Dataset source or same-different
        task); None when the source's own "test" split is its one test set."""
        return None
