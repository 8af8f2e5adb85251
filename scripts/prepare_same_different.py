"""Write the same-different episodes to disk, so that training reads instead of drawing them.

    uv run python scripts/prepare_same_different.py [--root data/same_different] [--workers 8]

The cache holds exactly the episodes that `SameDifferentEpisodes` draws on the fly with the same
seed (episode e of a task, support size and split is a pure function of them), whatever the
number of workers. Finished files are skipped, so an interrupted run can simply be restarted.
Train with `dataset.cached=true` afterwards. At the defaults (ten tasks, support sizes 4/6/8/10,
1000/200/200 episodes) the cache takes about 25 GB: ~504,000 uint8 128x128x3 images.
"""

from __future__ import annotations

import argparse
import multiprocessing
from pathlib import Path

from tqdm import tqdm

from conml.data.out_folder import check_out_folder
from conml.data.same_different.cache import is_complete, write_episodes, write_manifest
from conml.data.same_different.episodes import SameDifferentEpisodes
from conml.data.same_different.tasks import SHAPE_TASKS
from conml.data.seeding import SPLITS
from conml.errors import UserError, exit_with

_source: SameDifferentEpisodes | None = None


def _start_worker(settings: dict) -> None:
    global _source
    _source = SameDifferentEpisodes(**settings)


def _draw(address: tuple[str, int, str, int]):
    return _source.generate(*address)


def _counted(episodes, bar: tqdm):
    for episode in episodes:
        bar.update(1)
        yield episode


def prepare(
    root: Path,
    tasks: list[str],
    support_sizes: list[int],
    episodes: list[int],
    queries: int = 2,
    seed: int = 0,
    objects_root: str | None = None,
    workers: int = 1,
) -> None:
    """Write every (task, support size, split) file that is not complete yet."""
    # Drawn, not read (cached=False: root is where they are written); one block, no held-out task (neither
    # changes an episode, only which indices hold which support size and which tasks train).
    settings = dict(
        tasks=tasks,
        held_out=None,
        support_sizes=support_sizes,
        queries=queries,
        episodes=episodes,
        block=1,
        seed=seed,
        root=str(root),
        cached=False,
        objects_root=objects_root,
    )
    SameDifferentEpisodes(**settings)  # fail on bad settings before any file is touched
    check_out_folder(root, "--root")
    write_manifest(root, seed, queries)
    jobs = [
        (task, support, split, count)
        for task in tasks
        for support in support_sizes
        for split, count in zip(SPLITS, episodes)
        if not is_complete(root, task, support, split, count)
    ]
    total = sum(count for *_, count in jobs)
    with (
        multiprocessing.get_context("fork").Pool(workers, _start_worker, (settings,)) as pool,
        tqdm(total=total, unit="episode") as bar,
    ):
        for task, support, split, count in jobs:
            bar.set_description(f"{task} S={support} {split}")
            drawn = pool.imap(_draw, [(task, support, split, e) for e in range(count)], chunksize=8)
            write_episodes(root, task, support, split, _counted(drawn, bar), count)
    print(f"same-different cache ready at {root} ({len(jobs)} files written).")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("data/same_different"), help="cache folder (dataset.root)")
    parser.add_argument(
        "--tasks", nargs="+", default=list(SHAPE_TASKS), help="task names (naturalistic needs --objects-root)"
    )
    parser.add_argument("--support-sizes", nargs="+", type=int, default=[4, 6, 8, 10])
    parser.add_argument("--episodes", nargs=3, type=int, default=[1000, 200, 200], metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--queries", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="dataset.seed")
    parser.add_argument("--objects-root", default=None, help="folder of object photographs for the naturalistic task")
    parser.add_argument("--workers", type=int, default=max(1, multiprocessing.cpu_count() - 1))
    args = parser.parse_args(argv)
    try:
        prepare(
            args.root,
            args.tasks,
            args.support_sizes,
            args.episodes,
            args.queries,
            args.seed,
            args.objects_root,
            args.workers,
        )
    except UserError as error:
        exit_with(UserError(_as_options(str(error))))


# The dataset's checks name its settings (dataset.tasks=...); here they are this script's options.
_OPTIONS = {
    "dataset.tasks": "--tasks",
    "dataset.support_sizes": "--support-sizes",
    "dataset.episodes": "--episodes",
    "dataset.queries": "--queries",
    "dataset.seed": "--seed",
    "dataset.objects_root": "--objects-root",
}


def _as_options(message: str) -> str:
    for setting, option in _OPTIONS.items():
        message = message.replace(setting, option)
    return message


if __name__ == "__main__":
    main()
