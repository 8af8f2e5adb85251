"""A small Omniglot in the official on-disk layout: every official alphabet and character, few drawings.

`images_background/<Alphabet>/characterNN/NNNN_MM.png` and `images_evaluation/...` (105 x 105 1-bit
PNGs, as released), zipped as the official files are (one top folder per zip) or extracted, and
`all_runs/runNN/{training/classNN.png, test/itemNN.png, class_labels.txt}`. Character c's drawings
are its own random blot plus a drawing-specific speck, so characters are told apart; the drawings
of run r's test items are copies of its training drawings, item j showing class ANSWERS[r][j].
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from conml.data.images.omniglot import SETS, split_lists

DRAWINGS = 2
SIDE = 105


def drawing(character: int, index: int) -> bytes:
    """A 1-bit PNG: strokes black (0) on white, as the official drawings."""
    rng = np.random.default_rng([character, 7])
    blot = rng.random((6, 6)) < 0.3
    pixels = np.ones((SIDE, SIDE), bool)
    pixels[: 6 * 15, : 6 * 15] = ~np.kron(blot, np.ones((15, 15), bool))
    pixels[index * 4 : index * 4 + 3, -3:] = False
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def set_members(name: str) -> dict[str, bytes]:
    """{path inside the set's zip: PNG bytes} for every character of the official set `name`."""
    members, number = {}, 0
    for alphabet, count in split_lists()["sets"][name].items():
        for c in range(1, count + 1):
            number += 1
            for d in range(1, DRAWINGS + 1):
                members[f"{name}/{alphabet}/character{c:02d}/{number:04d}_{d:02d}.png"] = drawing(
                    SETS.index(name) * 10000 + number, d
                )
    return members


def answers(run: int) -> list[int]:
    """The training class (0-based) that test item j of `run` shows: a fixed permutation per run."""
    return [int(v) for v in np.random.default_rng([run, 3]).permutation(20)]


def run_members() -> dict[str, bytes]:
    members = {}
    for r in range(1, 21):
        run = f"run{r:02d}"
        lines = []
        for j, answer in enumerate(answers(r)):
            members[f"{run}/test/item{j + 1:02d}.png"] = drawing(100000 + 100 * r + answer, 1)
            lines.append(f"{run}/test/item{j + 1:02d}.png {run}/training/class{answer + 1:02d}.png")
        for k in range(20):
            members[f"{run}/training/class{k + 1:02d}.png"] = drawing(100000 + 100 * r + k, 1)
        members[f"{run}/class_labels.txt"] = ("\n".join(lines) + "\n").encode()
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_folder(root: Path, members: dict[str, bytes]) -> Path:
    for name, data in members.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_official_zips(root: Path) -> Path:
    """The official zips in `root`: images_background.zip, images_evaluation.zip, all_runs.zip."""
    for name in SETS:
        write_zip(root / f"{name}.zip", set_members(name))
    write_zip(root / "all_runs.zip", run_members())
    return root


def write_extracted(root: Path) -> Path:
    """The same files extracted: images_background/, images_evaluation/, all_runs/."""
    for name in SETS:
        write_folder(root, set_members(name))
    write_folder(root / "all_runs", run_members())
    return root
