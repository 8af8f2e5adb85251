"""Episode compositions: which classes, and how many support and query images of each.

The variable-way variable-shot procedure is Meta-Dataset's `EpisodeDescriptionSampler`
(Triantafillou et al. 2020, `meta_dataset/data/sampling.py`), step for step:

1. ways ~ U[min_ways, min(max_ways, classes)], classes drawn uniformly; for ILSVRC-2012 a WordNet
   node spanning between min_ways and 392 leaves is drawn and its leaves (at most max_ways of them)
   are the classes; for Omniglot an alphabet is drawn, then ways and characters within it;
2. queries per class = min(max_num_query, smallest class // 2), the same for every class;
3. support set size = min(max_support_set_size, sum_c ceil(beta * min(100, remaining_c))), beta ~ U(0, 1];
4. support per class = 1 + floor(proportion_c * (size - ways)), proportions ~ images_c * exp(U[log 0.5, log 2]),
   capped by the images left after the query.

Fixing `ways`, `shots` and/or `queries` gives the fixed-way fixed-shot episodes of the usual
N-way K-shot protocol (classes then drawn uniformly, ignoring the ontology, as the official
pipeline requires).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from conml.errors import ConfigError, DataError

# Internal WordNet nodes spanning more leaves than this are never drawn (Meta-Dataset's value: the
# smallest bound that still reaches every ILSVRC leaf).
MAX_SPANNING_LEAVES_ELIGIBLE = 392


@dataclass(frozen=True)
class EpisodeSettings:
    """Meta-Dataset's EpisodeDescriptionConfig; None for ways/shots/queries means variable."""

    ways: Optional[int] = None
    shots: Optional[int] = None
    queries: Optional[int] = None
    min_ways: int = 5
    max_ways: int = 50
    max_num_query: int = 10
    max_support_set_size: int = 500
    max_support_size_contrib_per_class: int = 100
    min_log_weight: float = math.log(0.5)
    max_log_weight: float = math.log(2.0)
    use_ontology: bool = True

    def __post_init__(self):
        for name in ("ways", "shots", "queries"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"dataset.{name} must be at least 1 (or null for variable), got {value}.")
        if not 2 <= self.min_ways <= self.max_ways:
            raise ConfigError(
                f"dataset.min_ways and dataset.max_ways must satisfy 2 <= min_ways <= max_ways, got {self.min_ways} and {self.max_ways}."
            )


@dataclass(frozen=True)
class Composition:
    """One episode: class ids in label order, with support and query counts per class."""

    classes: np.ndarray
    support: np.ndarray
    query: np.ndarray


def sample_composition(
    rng: np.random.Generator,
    settings: EpisodeSettings,
    classes: tuple[int, ...],
    counts: dict[int, int],
    ontology: str,
    groups: tuple[tuple[int, ...], ...],
    where: str,
) -> Composition:
    """Draw one episode's composition from the classes of one split of one source (`where` names them in errors)."""
    chosen = _choose_classes(rng, settings, classes, counts, ontology, groups, where)
    images = np.array([counts[c] for c in chosen])
    shots = settings.shots
    if settings.queries is not None:
        queries = settings.queries
    elif shots is None:
        if images.min() < 2:
            raise DataError(
                f"{where}: every class needs at least 2 images for variable-shot episodes; a drawn class has {images.min()}."
            )
        queries = int(min(settings.max_num_query, (images // 2).min()))
    else:
        queries = int(min(settings.max_num_query, images.min() - shots))
    if shots is not None:
        support = np.full(len(chosen), shots)
    else:
        remaining = images - queries
        size = _support_set_size(rng, remaining, settings)
        support = _support_per_class(rng, images, remaining, size, settings)
    query = np.full(len(chosen), queries)
    if queries < 1 or (support + query > images).any():
        raise DataError(
            f"{where}: a drawn class has too few images for {settings.shots} support and {settings.queries} query examples."
        )
    return Composition(np.asarray(chosen), support.astype(np.int64), query.astype(np.int64))


def _choose_classes(rng, settings, classes, counts, ontology, groups, where) -> list[int]:
    if settings.ways is not None:
        need = (settings.shots or 1) + (settings.queries or 1)
        eligible = [c for c in classes if counts[c] >= need]
        if len(eligible) < settings.ways:
            raise DataError(
                f"{where}: {settings.ways}-way episodes need {settings.ways} classes with at least {need} images; there are {len(eligible)}."
            )
        return list(rng.choice(eligible, settings.ways, replace=False))
    if settings.use_ontology and ontology == "dag":
        nodes = [g for g in groups if settings.min_ways <= len(g) <= MAX_SPANNING_LEAVES_ELIGIBLE]
        if not nodes:
            raise DataError(
                f"{where}: no WordNet node spans between {settings.min_ways} and {MAX_SPANNING_LEAVES_ELIGIBLE} classes."
            )
        leaves = nodes[rng.integers(len(nodes))]
        if len(leaves) > settings.max_ways:
            return list(rng.choice(leaves, settings.max_ways, replace=False))
        return list(rng.permutation(leaves))
    if settings.use_ontology and ontology == "bilevel":
        small = [len(g) for g in groups if len(g) < settings.min_ways]
        if small or not groups:
            raise DataError(
                f"{where}: every superclass needs at least min_ways={settings.min_ways} classes (found sizes {small})."
            )
        members = groups[rng.integers(len(groups))]
        ways = _uniform_ways(rng, settings, len(members), where)
        return list(rng.choice(members, ways, replace=False))
    ways = _uniform_ways(rng, settings, len(classes), where)
    return list(rng.choice(classes, ways, replace=False))


def _uniform_ways(rng, settings, available: int, where: str) -> int:
    if available < settings.min_ways:
        raise DataError(f"{where}: min_ways={settings.min_ways} but only {available} classes are available.")
    return int(rng.integers(settings.min_ways, min(settings.max_ways, available) + 1))


def _support_set_size(rng, remaining: np.ndarray, settings: EpisodeSettings) -> int:
    if settings.max_support_set_size < len(remaining):
        raise ConfigError(
            f"dataset.max_support_set_size={settings.max_support_set_size} is smaller than the {len(remaining)} ways of an episode."
        )
    beta = rng.uniform()
    contributions = np.minimum(settings.max_support_size_contrib_per_class, remaining)
    # floor(beta * c + 1) with beta in [0, 1) is ceil(beta' * c) with beta' in (0, 1]: at least one per class.
    return int(min(np.floor(beta * contributions + 1).sum(), settings.max_support_set_size))


def _support_per_class(
    rng, images: np.ndarray, remaining: np.ndarray, size: int, settings: EpisodeSettings
) -> np.ndarray:
    if remaining.min() < 1:
        raise DataError("A drawn class has no images left for its support set after the query set.")
    weights = images * np.exp(rng.uniform(settings.min_log_weight, settings.max_log_weight, size=images.shape))
    desired = np.floor(weights / weights.sum() * (size - len(images))).astype(np.int64) + 1
    return np.minimum(desired, remaining)
