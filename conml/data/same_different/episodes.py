"""Same-different episodes: balanced supports of several sizes, interleaved over tasks.

Episode e of (task, support size S, split) is a pure function of (seed, split, task, S, e): its
labels are S/2 same + S/2 different in the support and queries/2 of each in the query set, each
set shuffled. A split holds `episodes` such episodes per (task, S): 1000/200/200 in configs/dataset/same_different.yaml.

Tasks of one meta-batch must share S, because per-task BatchNorm statistics would see padding.
So index i of a split (with `shots` unset) is laid out in blocks of `block` consecutive indices:
block b uses S = support_sizes[b mod len(support_sizes)], and inside the stream of one S the
tasks alternate (k-th episode: task k mod T, episode k div T, wrapping after `episodes`). With
`block` equal to the meta-batch size every meta-batch has one S, the support size changes from
one meta-batch to the next and the tasks alternate within a batch. With `shots=S` given, index
i is episode i div T of task i mod T at that S. Meta-testing uses `test_sets()`, one per test
task, so results are reported per task and support size.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from conml.data.episode_source import EpisodeSource
from conml.data.same_different.cache import EpisodeCache
from conml.data.same_different.naturalistic import ObjectPairs
from conml.data.same_different.tasks import ALL_TASKS, NATURALISTIC, EpisodeImages, ShapeTask
from conml.data.seeding import SPLITS
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.task_kind import CLASSIFICATION


class SameDifferentEpisodes(EpisodeSource):
    """Episode source of the same-different tasks (2-way classification: 1 = same, 0 = different).

    `held_out` names a task that is left out of train/val and is the only test task (the
    leave-one-out protocol). `cached` reads the episodes from `root` (made by
    `make data-same-different`) instead of drawing them; both give identical episodes.
    `objects_root` is the folder of object photographs of the `naturalistic` task.
    """

    kind = CLASSIFICATION

    def __init__(
        self,
        tasks: list[str],
        held_out: Optional[str],
        support_sizes: list[int],
        queries: int,
        episodes: list[int],
        block: int,
        seed: int,
        root: str,
        cached: bool,
        objects_root: Optional[str],
    ):
        unknown = [t for t in tasks if t not in ALL_TASKS]
        if unknown or not tasks or len(set(tasks)) != len(tasks):
            raise ConfigError(f"dataset.tasks={list(tasks)} must be distinct names from {list(ALL_TASKS)}.")
        if held_out is not None and held_out not in tasks:
            raise ConfigError(f"dataset.held_out={held_out!r} must be one of dataset.tasks={list(tasks)}.")
        if held_out is not None and len(tasks) < 2:
            raise ConfigError("dataset.held_out needs at least one other task in dataset.tasks to train on.")
        if not support_sizes or any(s < 2 or s % 2 for s in [*support_sizes, queries]):
            raise ConfigError(
                f"dataset.support_sizes={list(support_sizes)} and dataset.queries={queries} must be even and at least 2 "
                "(each set holds as many same as different examples)."
            )
        if len(episodes) != len(SPLITS) or min(episodes) < 1:
            raise ConfigError(f"dataset.episodes={list(episodes)} must be three positive counts: train, val, test.")
        if block < 1:
            raise ConfigError(f"dataset.block={block} must be at least 1.")
        if NATURALISTIC in tasks and objects_root is None and not cached:
            raise ConfigError(
                "The naturalistic task needs dataset.objects_root: a folder of object photographs "
                "(dataset=same_different_naturalistic sets it to ${paths.data_dir}/brady_objects)."
            )
        self.support_sizes, self.queries, self.block, self.seed = list(support_sizes), queries, block, seed
        self.episodes = dict(zip(SPLITS, episodes))
        training = [t for t in tasks if t != held_out]
        self.tasks = {"train": training, "val": training, "test": [held_out] if held_out else list(tasks)}
        # Meta-testing without eval.shots uses the largest support size.
        self.shots = max(self.support_sizes)
        self._cache = EpisodeCache(root, seed, queries, self.episodes) if cached else None
        self._generators: dict[str, EpisodeImages] = {}
        if not cached:
            self._generators = {
                t: ObjectPairs(objects_root, seed) if t == NATURALISTIC else ShapeTask(t) for t in tasks
            }

    # -- addressing ----------------------------------------------------------------------------
    def address(self, tasks: list[str], split: str, index: int, shots: int | None = None) -> tuple[str, int, int]:
        """(task, support size, episode number) of index `index` of `split` when drawing from `tasks`."""
        if shots is None:
            block = index // self.block
            shots = self.support_sizes[block % len(self.support_sizes)]
            index = (block // len(self.support_sizes)) * self.block + index % self.block
        return tasks[index % len(tasks)], shots, (index // len(tasks)) % self.episodes[split]

    def test_sets(self) -> dict[str, TaskTestSet]:
        """One test set per test task, so that meta-testing reports every task (Table A1)."""
        return {task: TaskTestSet(self, task) for task in self.tasks["test"]}

    # -- episodes ------------------------------------------------------------------------------
    def generate(
        self, task: str, support: int, split: str, episode: int, queries: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Images uint8 [support + queries, 128, 128, 3] and labels uint8 of one episode, drawn afresh."""
        queries = self.queries if queries is None else queries
        stream = np.random.SeedSequence([self.seed, SPLITS.index(split), ALL_TASKS.index(task), support, episode])
        label_seed, image_seed = stream.spawn(2)
        order = np.random.default_rng(label_seed)
        labels = np.concatenate([order.permutation(np.arange(n) % 2) for n in (support, queries)]).astype(np.uint8)
        return self._generators[task].episode_images(np.random.default_rng(image_seed), split, labels), labels

    def episode(self, task: str, support: int, split: str, episode: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
        """One episode, from the cache when there is one."""
        if self._cache is None:
            return self.generate(task, support, split, episode, queries)
        if queries != self.queries:
            raise ConfigError(
                f"The episode cache holds {self.queries} queries per episode; set dataset.cached=false to draw {queries}."
            )
        return self._cache.episode(task, support, split, episode)

    def sample(
        self, split: str, first: int, count: int, shots: int | None = None, queries: int | None = None
    ) -> EpisodeBatch:
        return self.draw(self.tasks[split], split, first, count, shots, queries)

    def draw(
        self, tasks: list[str], split: str, first: int, count: int, shots: int | None, queries: int | None
    ) -> EpisodeBatch:
        """Episodes `first .. first + count - 1` of `split`, interleaving `tasks`."""
        queries = self.queries if queries is None else queries
        if queries < 2 or queries % 2:
            raise ConfigError(f"queries={queries} must be even and at least 2 (half same, half different).")
        if shots is not None and (shots < 2 or shots % 2):
            raise ConfigError(f"shots={shots}: a same-different support size must be even and at least 2.")
        addresses = [self.address(tasks, split, i, shots) for i in range(first, first + count)]
        sizes = sorted({support for _, support, _ in addresses})
        if len(sizes) > 1:
            raise ConfigError(
                f"Episodes {first}..{first + count - 1} of the {split} split mix support sizes {sizes}: every batch must "
                f"lie inside one block of dataset.block={self.block} episodes. Make trainer.meta_batch_size and "
                "eval.batch_size divide dataset.block (the presets set all three to trainer.meta_batch_size)."
            )
        drawn = [self.episode(task, support, split, e, queries) for task, support, e in addresses]
        images = torch.from_numpy(np.stack([d[0] for d in drawn]))
        labels = torch.from_numpy(np.stack([d[1] for d in drawn])).long()
        x = images.permute(0, 1, 4, 2, 3).float().div_(127.5).sub_(1.0)
        support = sizes[0]
        info = {
            "tasks": [task for task, _, _ in addresses],
            "support_size": support,
            "episodes": [e for _, _, e in addresses],
        }
        return EpisodeBatch(
            Tasks(x[:, :support], labels[:, :support]), Tasks(x[:, support:], labels[:, support:]), info=info
        )


class TaskTestSet(EpisodeSource):
    """The episodes of one task of a same-different source: its own test set."""

    def __init__(self, source: SameDifferentEpisodes, task: str):
        self.source, self.task = source, task
        self.kind, self.shots = source.kind, source.shots

    def sample(
        self, split: str, first: int, count: int, shots: int | None = None, queries: int | None = None
    ) -> EpisodeBatch:
        return self.source.draw([self.task], split, first, count, shots, queries)
