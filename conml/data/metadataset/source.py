"""Meta-Dataset episodes from the uint8 caches, padded into one EpisodeBatch.

Episode `i` of a split is a pure function of (seed, split, i): its generator first picks the source
(uniformly among the sources that have classes in the split, as Meta-Dataset's multi-source
pipeline does), then the composition, then the images. Episodes of different sizes are padded to
the largest of the batch; `Tasks.mask` marks the real examples, and labels run 0..ways-1 in each
task (`info["ways"]` holds the ways). Images stay uint8 until they are on `device`, where they are
scaled to [-1, 1] as in Meta-Dataset's reader. `test_sets()` gives one fixed test set per test source.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from conml.data.episode_source import EpisodeSource
from conml.data.metadataset.cache import PREPARE_COMMAND, SourceCache, cache_files
from conml.data.metadataset.sampler import EpisodeSettings, sample_composition
from conml.data.metadataset.synthetic import synthetic_source
from conml.data.seeding import SPLITS, episode_rng
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError, DataError
from conml.task_kind import CLASSIFICATION

# Meta-Dataset's sources: the eight it trains on, then the two held out for testing only.
TRAIN_SOURCES = ("ilsvrc_2012", "omniglot", "aircraft", "cu_birds", "dtd", "quickdraw", "fungi", "vgg_flower")
ALL_SOURCES = (*TRAIN_SOURCES, "traffic_sign", "mscoco")


class MetaDataset(EpisodeSource):
    """Episodes from one or several Meta-Dataset sources (`sources`) and per-source test sets (`test_sources`).

    `ways`, `shots`, `queries` left null give the official variable-way variable-shot episodes; set
    them for fixed N-way K-shot ones. `use_ontology` draws ILSVRC-2012 classes from WordNet nodes and
    Omniglot classes from one alphabet, as the official pipeline does. `train_max_ways` and
    `train_max_support_set_size` bound training episodes only (CNAPs trains with 40 and 400).
    `synthetic` reads no cache: synthetic sources with the real class splits stand in for them
    (`conml.data.metadataset.synthetic`; for machine checks and memory plans, never for results).
    """

    kind = CLASSIFICATION

    def __init__(
        self,
        root: str,
        sources: tuple[str, ...],
        test_sources: Optional[tuple[str, ...]],
        image_size: int,
        ways: Optional[int],
        shots: Optional[int],
        queries: Optional[int],
        min_ways: int,
        max_ways: int,
        max_num_query: int,
        max_support_set_size: int,
        max_support_size_contrib_per_class: int,
        train_max_ways: Optional[int],
        train_max_support_set_size: Optional[int],
        min_log_weight: float,
        max_log_weight: float,
        use_ontology: bool,
        device: str,
        seed: int,
        synthetic: bool,
    ):
        names = (*sources, *(test_sources or ()))
        unknown = sorted(set(names) - set(ALL_SOURCES))
        if unknown or not sources:
            raise ConfigError(
                f"dataset.sources must be a non-empty list of Meta-Dataset sources {list(ALL_SOURCES)}; got unknown {unknown}."
            )
        self.settings = EpisodeSettings(
            ways,
            shots,
            queries,
            min_ways,
            max_ways,
            max_num_query,
            max_support_set_size,
            max_support_size_contrib_per_class,
            min_log_weight,
            max_log_weight,
            use_ontology,
        )
        self.train_settings = replace(
            self.settings,
            max_ways=train_max_ways or max_ways,
            max_support_set_size=train_max_support_set_size or max_support_set_size,
        )
        self.root, self.image_size, self.seed = Path(root), image_size, seed
        self.device = (
            torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)
        )
        self.sources = tuple(sources)
        self.test_sources = tuple(test_sources) if test_sources is not None else self.sources
        if synthetic:
            self.caches = {
                name: synthetic_source(name, image_size, seed)
                for name in dict.fromkeys((*self.sources, *self.test_sources))
            }
        else:
            self.caches = self._open_caches(tuple(test_sources or ()))
        if not any(self.caches[name].split_classes["train"] for name in self.sources):
            raise ConfigError(
                f"None of dataset.sources {list(self.sources)} has training classes; traffic_sign and mscoco are test-only sources."
            )

    def _open_caches(self, test_sources: tuple[str, ...]) -> dict[str, SourceCache]:
        """The cache of every source named in `sources` or `test_sources`; missing ones are named with the key that lists them."""
        keys = (("sources", self.sources), ("test_sources", test_sources))
        listed = {name: [key for key, names in keys if name in names] for name in (*self.sources, *self.test_sources)}
        missing = [
            name for name in listed if not all(path.is_file() for path in cache_files(self.root, name, self.image_size))
        ]
        if missing:
            raise DataError(self._missing_message(missing, listed))
        return {name: SourceCache.open(self.root, name, self.image_size) for name in listed}

    def _missing_message(self, missing: list[str], listed: dict[str, list[str]]) -> str:
        images, index = cache_files(self.root, missing[0], self.image_size)
        by_keys: dict[str, list[str]] = {}
        for name in missing:
            by_keys.setdefault(" and ".join(f"dataset.{key}" for key in listed[name]), []).append(name)
        which = "; ".join(f"{', '.join(names)} (in {keys})" for keys, names in by_keys.items())
        message = (
            f"No {self.image_size}px Meta-Dataset cache under {self.root} for {which}: expected e.g. {images} and {index}. "
            f"Build the missing sources once from the converted records with `{PREPARE_COMMAND}` (see "
            "docs/datasets_metadataset.md), or set dataset.root to where they were built"
        )
        prepared = [
            name for name in ALL_SOURCES if all(p.is_file() for p in cache_files(self.root, name, self.image_size))
        ]
        if not any("sources" in listed[name] for name in missing):
            tested = [name for name in self.test_sources if name in prepared]
            message += (
                f". Every training source is prepared; only dataset.test_sources lists unprepared ones, so to test on the "
                f"prepared sources set dataset.test_sources=[{','.join(tested or self.sources)}] (or dataset.test_sources=null: "
                "the training sources)"
            )
        elif prepared:
            message += (
                f", or list only prepared sources ({', '.join(prepared)}) in dataset.sources and dataset.test_sources"
            )
        return message + "."

    @property
    def shots(self) -> Optional[int]:
        return self.settings.shots

    def test_sets(self) -> dict[str, OneSource]:
        """One fixed test set per test source, as Meta-Dataset reports results per source."""
        return {name: OneSource(self, name) for name in self.test_sources}

    def sample(
        self, split: str, first: int, count: int, shots: int | None = None, queries: int | None = None
    ) -> EpisodeBatch:
        names = self.test_sources if split == "test" else self.sources
        return self.sample_from(names, split, first, count, shots, queries)

    def sample_from(
        self, names: tuple[str, ...], split: str, first: int, count: int, shots: int | None, queries: int | None
    ) -> EpisodeBatch:
        """Tasks first..first+count-1 of `split`, each from one of the sources `names` that have classes in it."""
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}'; expected one of {list(SPLITS)}")
        pool = tuple(n for n in names if self.caches[n].split_classes[split])
        if not pool:
            raise ConfigError(
                f"None of the Meta-Dataset sources {list(names)} has {split} classes (traffic_sign and mscoco have no training classes)."
            )
        settings = self.train_settings if split == "train" else self.settings
        if shots is not None or queries is not None:
            settings = replace(
                settings,
                shots=shots if shots is not None else settings.shots,
                queries=queries if queries is not None else settings.queries,
            )
        episodes = [self._episode(pool, split, first + i, settings) for i in range(count)]
        support = self._pad([e[0] for e in episodes])
        query = self._pad([e[1] for e in episodes])
        info = {"ways": torch.tensor([e[2] for e in episodes]), "sources": [e[3] for e in episodes]}
        return EpisodeBatch(support, query, info=info)

    def _pad(self, tasks: list[tuple[np.ndarray, np.ndarray]]) -> Tasks:
        """Stack tasks of possibly different sizes on the device; mask is None when none needed padding."""
        sizes = [len(labels) for _, labels in tasks]
        longest = max(sizes)
        pixels = np.zeros((len(tasks), longest, *tasks[0][0].shape[1:]), dtype=np.uint8)
        y = np.zeros((len(tasks), longest), dtype=np.int64)
        mask = np.arange(longest)[None, :] < np.array(sizes)[:, None]
        for i, (images, labels) in enumerate(tasks):
            pixels[i, : len(labels)], y[i, : len(labels)] = images, labels
        x = (
            torch.from_numpy(pixels)
            .to(self.device, non_blocking=True)
            .permute(0, 1, 4, 2, 3)
            .float()
            .div_(127.5)
            .sub_(1.0)
        )
        to_device = lambda a: torch.from_numpy(a).to(self.device, non_blocking=True)  # noqa: E731
        return Tasks(x, to_device(y), None if min(sizes) == longest else to_device(mask))

    def _episode(self, pool: tuple[str, ...], split: str, index: int, settings: EpisodeSettings):
        rng = episode_rng(self.seed, split, index)
        cache = self.caches[pool[rng.integers(len(pool))]]
        where = f"Meta-Dataset source '{cache.name}', {split} split"
        plan = sample_composition(
            rng, settings, cache.split_classes[split], cache.counts, cache.ontology, cache.groups[split], where
        )
        support_rows, query_rows, support_labels, query_labels = [], [], [], []
        for label, (class_id, n_support, n_query) in enumerate(zip(plan.classes, plan.support, plan.query)):
            rows = cache.starts[int(class_id)] + rng.choice(
                cache.counts[int(class_id)], n_support + n_query, replace=False
            )
            support_rows.append(rows[:n_support])
            query_rows.append(rows[n_support:])
            support_labels.append(np.full(n_support, label))
            query_labels.append(np.full(n_query, label))
        support = _examples(cache.images, np.concatenate(support_rows), np.concatenate(support_labels), rng)
        query = _examples(cache.images, np.concatenate(query_rows), np.concatenate(query_labels), rng)
        return support, query, len(plan.classes), cache.name


class OneSource(EpisodeSource):
    """The episodes of a single source of a MetaDataset: an episode source of its own (a per-source test set)."""

    kind = CLASSIFICATION

    def __init__(self, parent: MetaDataset, name: str):
        self.parent, self.name = parent, name

    @property
    def shots(self) -> Optional[int]:
        return self.parent.shots

    def sample(
        self, split: str, first: int, count: int, shots: int | None = None, queries: int | None = None
    ) -> EpisodeBatch:
        return self.parent.sample_from((self.name,), split, first, count, shots, queries)


def _examples(
    images: np.ndarray, rows: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [n, S, S, 3] and labels, shuffled so that no learner can read a label off a position."""
    order = rng.permutation(len(rows))
    rows, labels = rows[order], labels[order]
    by_row = np.argsort(rows, kind="stable")  # read the memory map front to back
    pixels = np.empty((len(rows), *images.shape[1:]), dtype=np.uint8)
    pixels[by_row] = images[rows[by_row]]
    return pixels, labels
