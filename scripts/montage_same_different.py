"""A montage of same and different example images per same-different task, for looking at.

    uv run python scripts/montage_same_different.py --out docs/images/same_different_montage.png

Images are the first support images of training episodes, as the episode source draws them, shown
at their native 128x128 resolution (1-px lines survive no resampling).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from conml.data.same_different.episodes import SameDifferentEpisodes
from conml.data.same_different.tasks import SHAPE_TASKS

CELL, GAP, LABEL_WIDTH, HEADER = 128, 4, 96, 18


def examples(source: SameDifferentEpisodes, task: str, per_label: int) -> dict[int, list[np.ndarray]]:
    """`per_label` same (1) and different (0) images of `task`, from successive training episodes."""
    found: dict[int, list[np.ndarray]] = {1: [], 0: []}
    episode = 0
    while min(len(v) for v in found.values()) < per_label:
        images, labels = source.generate(task, 2, "train", episode)
        for image, label in zip(images, labels):
            if len(found[int(label)]) < per_label:
                found[int(label)].append(image)
        episode += 1
    return found


def montage(tasks: list[str], per_label: int, seed: int, out: Path, objects_root: str | None = None) -> None:
    source = SameDifferentEpisodes(
        tasks=tasks,
        held_out=None,
        support_sizes=[2],
        queries=2,
        episodes=[1000, 200, 200],
        block=1,
        seed=seed,
        root="data/same_different",
        cached=False,
        objects_root=objects_root,
    )
    columns = 2 * per_label
    sheet = Image.new(
        "RGB", (LABEL_WIDTH + columns * (CELL + GAP), HEADER + len(tasks) * (CELL + GAP)), (160, 160, 160)
    )
    draw = ImageDraw.Draw(sheet)
    for column in range(columns):
        title = "same" if column < per_label else "different"
        draw.text((LABEL_WIDTH + column * (CELL + GAP) + CELL // 2 - 20, 3), title, fill=(0, 0, 0))
    for row, task in enumerate(tasks):
        top = HEADER + row * (CELL + GAP)
        draw.text((6, top + CELL // 2 - 6), task, fill=(0, 0, 0))
        found = examples(source, task, per_label)
        for column, image in enumerate(found[1] + found[0]):
            sheet.paste(Image.fromarray(image), (LABEL_WIDTH + column * (CELL + GAP), top))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/images/same_different_montage.png"))
    parser.add_argument(
        "--tasks", nargs="+", default=list(SHAPE_TASKS), help="task names (naturalistic needs --objects-root)"
    )
    parser.add_argument("--per-label", type=int, default=3, help="same and different examples per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--objects-root", default=None, help="folder of object photographs for the naturalistic task")
    args = parser.parse_args()
    montage(args.tasks, args.per_label, args.seed, args.out, args.objects_root)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
