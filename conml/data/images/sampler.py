"""N-way K-shot episodes as image indices: which images, in which order, under which labels.

Pure numpy on the class offset table of a split, so an episode is a function of its generator
alone (seeded by (seed, split, index)) and costs microseconds, not image reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conml.errors import ConfigError


@dataclass(frozen=True)
class EpisodeShape:
    """`ways` classes, each with `shots` support and `queries` query images."""

    ways: int
    shots: int
    queries: int

    def check(self, counts: np.ndarray, where: str) -> None:
        """Raise if a split with these images per class cannot provide such episodes."""
        if min(self.ways, self.shots, self.queries) < 1:
            raise ConfigError(
                f"{where}: ways, shots and queries must be positive, got {self.ways}, {self.shots}, {self.queries}."
            )
        if self.ways > len(counts):
            raise ConfigError(
                f"{where}: {self.ways}-way episodes need {self.ways} classes, but the split has {len(counts)}."
            )
        if self.shots + self.queries > counts.min():
            raise ConfigError(
                f"{where}: {self.shots} shots + {self.queries} queries per class need {self.shots + self.queries} images "
                f"of every class, but the smallest class has {int(counts.min())}."
            )


@dataclass(frozen=True)
class EpisodeIndices:
    """Image indices into the split and per-episode labels 0..ways-1, for support and query;
    `classes[j]` is the class that label j names."""

    classes: np.ndarray
    support: np.ndarray
    support_labels: np.ndarray
    query: np.ndarray
    query_labels: np.ndarray


def draw_episode(
    rng: np.random.Generator, offsets: np.ndarray, counts: np.ndarray, shape: EpisodeShape
) -> EpisodeIndices:
    """One episode: distinct classes, distinct images per class, labels remapped, examples shuffled.

    Label j names the j-th drawn class, so the class-to-label map is a fresh random one in every
    episode. Support and query are shuffled so that any slice of them mixes classes.
    """
    ways, shots, queries = shape.ways, shape.shots, shape.queries
    classes = rng.choice(len(counts), ways, replace=False)
    picks = np.stack([offsets[c] + rng.choice(counts[c], shots + queries, replace=False) for c in classes])
    labels = np.repeat(np.arange(ways, dtype=np.int64)[:, None], shots + queries, axis=1)
    support_order = rng.permutation(ways * shots)
    query_order = rng.permutation(ways * queries)
    return EpisodeIndices(
        classes,
        picks[:, :shots].reshape(-1)[support_order],
        labels[:, :shots].reshape(-1)[support_order],
        picks[:, shots:].reshape(-1)[query_order],
        labels[:, shots:].reshape(-1)[query_order],
    )
