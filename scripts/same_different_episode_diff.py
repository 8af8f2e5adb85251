"""Which same-different tasks draw different episodes in two checkouts of this repository.

A result trained at an older commit still describes a task whose episodes are pixel-identical today;
this says which tasks those are. Each checkout draws the same seed-addressed episodes (every shape
task, each split, support size 4) with its own code, and the pixels are compared:

    uv run python scripts/same_different_episode_diff.py <older checkout> [<newer checkout, default: this one>]

An older checkout is made with `git worktree add --detach <folder> <commit>`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
SUPPORT, EPISODES = 4, 4
# Run inside a checkout (its conml first on the path): writes the episodes of every shape task to argv[1].
# Every setting is stated (the constructor has none of its own): the values its defaults had before.
DRAW = f"""
import sys
import numpy as np
from conml.data.same_different import episodes
from conml.data.same_different.tasks import SHAPE_TASKS
source = episodes.SameDifferentEpisodes(
    tasks=list(SHAPE_TASKS), held_out=None, support_sizes=[4, 6, 8, 10], queries=2, episodes=[1000, 200, 200],
    block=1, seed=0, root="data/same_different", cached=False, objects_root=None,
)
np.savez_compressed(sys.argv[1], **{{
    f"{{task}}/{{split}}/{{e}}": source.generate(task, {SUPPORT}, split, e)[0]
    for task in SHAPE_TASKS for split in episodes.SPLITS for e in range({EPISODES})
}})
"""


def draw(checkout: Path, out: Path) -> dict[str, np.ndarray]:
    if not (checkout / "conml" / "data" / "same_different" / "episodes.py").is_file():
        sys.exit(f"error: {checkout} is not a checkout of this repository with the same-different episodes.")
    environment = os.environ | {"PYTHONPATH": str(checkout)}
    subprocess.run([sys.executable, "-c", DRAW, str(out)], cwd=checkout, env=environment, check=True)
    return dict(np.load(out))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("older", type=Path)
    parser.add_argument("newer", type=Path, nargs="?", default=HERE)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        old, new = (draw(path.resolve(), Path(folder) / f"{i}.npz") for i, path in enumerate((args.older, args.newer)))
    print(
        f"| task | episodes that differ (of {len(old) // len({k.split('/')[0] for k in old})}) | pixels that differ |"
    )
    print("|---|---|---|")
    for task in dict.fromkeys(key.split("/")[0] for key in old):
        shares = [(old[k] != new[k]).any(axis=-1).mean() for k in old if k.startswith(f"{task}/")]
        print(f"| {task} | {sum(share > 0 for share in shares)} | {100 * float(np.mean(shares)):.2f} % |")


if __name__ == "__main__":
    main()
