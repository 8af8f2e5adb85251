"""The on-disk episode cache: exactly the episodes the generators make, stored as uint8 arrays.

Layout under the cache root:
    manifest.json                                   stimulus version, seed and queries of the episodes
    <task>/support<S>_<split>_images.npy            uint8 [episodes, S + queries, 128, 128, 3]
    <task>/support<S>_<split>_labels.npy            uint8 [episodes, S + queries] (1 = same)
Each episode holds its support images, then its query images. Arrays are memory-mapped on read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from conml.errors import DataError

MANIFEST = "manifest.json"
PREPARE = "make data-same-different"
# The version of the stimuli a cache holds, increased whenever the generators draw other pixels.
# 1 (manifests without a version): wider_line strokes were the pixels within 1 px of the segment.
# 2: wider_line strokes follow OpenCV's thick-line rule.
VERSION = 2


def array_paths(root: Path, task: str, support: int, split: str) -> tuple[Path, Path]:
    """The (images, labels) files of one task, support size and split."""
    folder = root / task
    return folder / f"support{support}_{split}_images.npy", folder / f"support{support}_{split}_labels.npy"


def check_version(root: Path, manifest: dict) -> None:
    """Refuse a cache whose images another version of the generators drew."""
    found = manifest.get("version", 1)
    if found != VERSION:
        raise DataError(
            f"The same-different cache at {root} holds stimuli of version {found}, but this code draws version {VERSION} "
            "(the section 'Cache versions' of docs/same_different.md says what changed), so its episodes are not the ones "
            f"a run would draw. Delete that folder and rebuild it with `{PREPARE}` (or build a new one elsewhere with "
            f'`{PREPARE} ARGS="--root <folder>"` and set dataset.root=<folder>), or set dataset.cached=false to draw '
            "the episodes on the fly."
        )


def write_manifest(root: Path, seed: int, queries: int) -> None:
    """Record the settings of a new cache, or refuse to mix episodes made with other settings."""
    wanted = {"version": VERSION, "seed": seed, "queries": queries}
    path = root / MANIFEST
    if path.exists():
        found = json.loads(path.read_text())
        check_version(root, found)
        if found != wanted:
            raise DataError(
                f"{path} says its episodes were made with {found}, not {wanted}. Write this cache to another "
                "folder (--root), or delete that folder to rebuild it."
            )
        return
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wanted, indent=2))


def write_episodes(
    root: Path, task: str, support: int, split: str, episodes: Iterable[tuple[np.ndarray, np.ndarray]], count: int
) -> None:
    """Stream `count` episodes (images, labels) into one (task, support size, split) file pair.

    The files are written under a temporary name and renamed when complete, so an interrupted run
    never leaves a file that looks finished; a failed or interrupted write removes its temporary files.
    """
    image_path, label_path = array_paths(root, task, support, split)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    size = support + json.loads((root / MANIFEST).read_text())["queries"]
    partial = [p.with_name(p.name + ".partial") for p in (image_path, label_path)]
    try:
        images = np.lib.format.open_memmap(partial[0], mode="w+", dtype=np.uint8, shape=(count, size, 128, 128, 3))
        labels = np.lib.format.open_memmap(partial[1], mode="w+", dtype=np.uint8, shape=(count, size))
        written = 0
        for index, (episode_images, episode_labels) in enumerate(episodes):
            images[index], labels[index] = episode_images, episode_labels
            written = index + 1
        if written != count:
            raise DataError(
                f"Only {written} of {count} episodes of {task}, support {support}, {split} were produced; nothing was "
                "written for them. Run the command again."
            )
        images.flush()
        labels.flush()
        del images, labels
    except BaseException:
        for path in partial:
            path.unlink(missing_ok=True)
        raise
    for source, target in zip(partial, (image_path, label_path)):
        os.replace(source, target)


def is_complete(root: Path, task: str, support: int, split: str, count: int) -> bool:
    """Whether the file pair exists and holds at least `count` episodes."""
    paths = array_paths(root, task, support, split)
    return all(p.is_file() for p in paths) and len(np.load(paths[0], mmap_mode="r")) >= count


class EpisodeCache:
    """Reads cached episodes; every missing or mismatched file is reported with how to make it."""

    def __init__(self, root: str | Path, seed: int, queries: int, episodes: dict[str, int]):
        self.root, self.episodes = Path(root), episodes
        self._arrays: dict[tuple[str, int, str], tuple[np.ndarray, np.ndarray]] = {}
        manifest = self.root / MANIFEST
        if not manifest.is_file():
            raise DataError(
                f"dataset.cached=true but there is no same-different cache at {self.root} ({MANIFEST} is missing). "
                f"Build it with `{PREPARE}` (scripts/prepare_same_different.py --root {self.root}), or set "
                "dataset.cached=false to generate the episodes on the fly (the same episodes, more CPU time)."
            )
        found = json.loads(manifest.read_text())
        check_version(self.root, found)
        if (found["seed"], found["queries"]) != (seed, queries):
            raise DataError(
                f"The cache at {self.root} was made with seed={found['seed']}, queries={found['queries']}, but this run asks "
                f"for seed={seed}, queries={queries}. "
                f"Set dataset.seed/dataset.queries to the cached values, or rebuild the cache with `{PREPARE}`."
            )

    def episode(self, task: str, support: int, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        key = (task, support, split)
        if key not in self._arrays:
            self._arrays[key] = self._open(task, support, split)
        images, labels = self._arrays[key]
        return np.array(images[index]), np.array(labels[index])

    def _open(self, task: str, support: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        paths = array_paths(self.root, task, support, split)
        wanted = self.episodes[split]
        if not all(p.is_file() for p in paths):
            raise DataError(
                f"The same-different cache at {self.root} lacks {paths[0].relative_to(self.root)} (task {task}, "
                f"support size {support}, split {split}). Build it with `{PREPARE}` for these tasks and support sizes."
            )
        images, labels = (np.load(p, mmap_mode="r") for p in paths)
        if len(images) < wanted or len(labels) < wanted:
            raise DataError(
                f"{paths[0]} holds {len(images)} episodes but dataset.episodes asks for {wanted} {split} episodes. "
                f"Lower dataset.episodes or rebuild the cache with `{PREPARE}` and the larger count."
            )
        return images, labels
