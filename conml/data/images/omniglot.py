"""Omniglot (Lake et al. 2015) from its official files into the prepared caches training reads.

The official release has two sets, `images_background` (30 alphabets, 964 characters) and
`images_evaluation` (20 alphabets, 659 characters), each `<set>/<Alphabet>/characterNN/*.png`
(20 drawings of 105 x 105 1-bit pixels per character), shipped as `<set>.zip`. A source folder may
hold the zips, their extracted folders, or torchvision's download folder `omniglot-py/`.

Preprocessing is the reference codes' (Finn et al.'s MAML, Snell et al.'s ProtoNet): every drawing
is resized to 28 x 28 by Pillow, which resamples 1-bit images with nearest neighbour whatever filter
is asked (Finn et al. ask for LANCZOS), so pixels stay binary; strokes are inverted to 1 and the
background to 0 (stored as 255 and 0). Rotations by 90, 180 and 270 degrees as new classes are
drawn at episode time (`rotations: 4` in configs/dataset/omniglot.yaml), so the cache holds each drawing once.

Two split schemes are prepared, one cache folder each under the output folder:

- `vinyals/`: the 1,028 / 172 / 423-character train / val / test split of Vinyals et al. 2016
  (1,200 training characters with the validation part), from its published lists
  (`omniglot_splits.json`); used by Vinyals et al., Snell et al. and Nichol et al., and the split
  this project's Omniglot table trains on. Finn et al. shuffled the 1,623 characters with Python's
  `random` into 1,100 / 100 / 423 on their machine, which cannot be rebuilt exactly.
- `lake/`: Lake et al.'s background / evaluation split: train on the 964 background characters,
  test on the 659 evaluation ones. It has no validation part; `val` holds the evaluation set too
  (runs on it take `eval.checkpoint=last`). Lake's 20 one-shot runs (`all_runs.zip`) use drawings of
  the evaluation alphabets, so a model meant for them must be trained on this split.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from conml.data.images.cache import SPLITS, CacheWriter
from conml.errors import DataError

NAME = "omniglot"
IMAGE_SIZE = 28
SETS = ("images_background", "images_evaluation")
RUNS = "all_runs"
DRAWINGS = 20  # per character in the official sets
_SPLIT_FILE = Path(__file__).with_name("omniglot_splits.json")
_MEMBER = re.compile(r"^(?P<alphabet>[^/]+)/(?P<character>character\d\d)/(?P<file>[^/]+\.png)$")
_IGNORED = re.compile(r"(^|/)(__MACOSX|\.DS_Store|\._[^/]*)($|/)")

LAYOUTS = """\
  SOURCE/images_background.zip and SOURCE/images_evaluation.zip (the official files), or their
  extracted folders SOURCE/images_background/<Alphabet>/characterNN/*.png and
  SOURCE/images_evaluation/..., or torchvision's download folder SOURCE/omniglot-py/ holding either;
  optional: SOURCE/all_runs.zip or SOURCE/all_runs/runNN/ (Lake's 20 one-shot runs)"""


def split_lists() -> dict:
    """The official sets' alphabets ({set: {alphabet: characters}}) and the Vinyals split lists."""
    return json.loads(_SPLIT_FILE.read_text())


def scheme_characters(scheme: str) -> dict[str, list[str]]:
    """{split: sorted 'Alphabet/characterNN' names} of a split scheme ('vinyals' or 'lake')."""
    lists = split_lists()
    if scheme == "vinyals":
        return {split: lists["vinyals"][split] for split in SPLITS}
    background, evaluation = (
        sorted(f"{a}/character{c:02d}" for a, n in lists["sets"][name].items() for c in range(1, n + 1))
        for name in SETS
    )
    return {"train": background, "val": evaluation, "test": evaluation}


# (classes, images) per split of each scheme, with the official 20 drawings per character.
STANDARD = {
    scheme: {split: (len(chars), len(chars) * DRAWINGS) for split, chars in scheme_characters(scheme).items()}
    for scheme in ("vinyals", "lake")
}


@dataclass(frozen=True)
class OfficialSet:
    """One official set, zipped or extracted: its drawings by character and a way to read a drawing."""

    origin: str
    drawings: dict[str, list[str]]  # 'Alphabet/characterNN' -> sorted member names
    read: Callable[[str], bytes]


def find(source: Path, name: str) -> Path | None:
    """Where `name` (a set or all_runs) is under `source`: its folder or its zip, also inside omniglot-py/."""
    for base in (source, source / "omniglot-py"):
        for path in (base / name, base / f"{name}.zip"):
            if path.exists():
                return path
    return None


def open_set(source: Path, name: str) -> OfficialSet:
    """The official set `name` under `source`, its layout checked against the official alphabets."""
    path = find(source, name)
    if path is None:
        raise DataError(
            f"{source} holds no {name}.zip and no {name}/ folder (nor in {source / 'omniglot-py'}). Expected:\n{LAYOUTS}\n"
            "Run `make data-omniglot` without SOURCE to download the official files."
        )
    if path.suffix == ".zip":
        members, read = _zip_members(path, name)
    elif path.is_dir():
        members = [str(p.relative_to(path)) for p in sorted(path.rglob("*")) if p.is_file()]
        read = lambda member: (path / member).read_bytes()  # noqa: E731
    else:
        raise DataError(
            f"{path} is a file where the extracted folder {name}/ (or {name}.zip) should be. Remove it, or put the "
            f"official {name}.zip or its extracted folder there."
        )
    drawings: dict[str, list[str]] = {}
    strays = []
    for member in members:
        if _IGNORED.search(member):
            continue
        match = _MEMBER.match(member)
        if match is None:
            strays.append(member)
            continue
        drawings.setdefault(f"{match['alphabet']}/{match['character']}", []).append(member)
    if strays:
        raise DataError(
            f"{path} is not in the official layout {name}/<Alphabet>/characterNN/<drawing>.png: it holds "
            f"{len(strays)} other file(s), e.g. {', '.join(strays[:3])}. Use the official {name}.zip, or its folder extracted as it is."
        )
    _check_alphabets(path, name, drawings)
    return OfficialSet(str(path), {key: sorted(value) for key, value in sorted(drawings.items())}, read)


def _zip_members(path: Path, name: str) -> tuple[list[str], Callable[[str], bytes]]:
    """The members of `<name>.zip` relative to its top folder `name/`, and a reader of one."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(
            f"{path} is not a readable zip file ({error}); the download is damaged. Delete it and download it again "
            "(`make data-omniglot` without SOURCE)."
        ) from None
    files = [m for m in archive.namelist() if not m.endswith("/")]
    prefix = f"{name}/"
    outside = [m for m in files if not m.startswith(prefix) and not _IGNORED.search(m)]
    if outside:
        raise DataError(
            f"{path} is not in the official layout: its files should all be under {prefix}, but it holds e.g. "
            f"{', '.join(outside[:3])}. Use the official {name}.zip."
        )

    def read(member: str) -> bytes:
        try:
            return archive.read(prefix + member)
        except (zipfile.BadZipFile, OSError) as error:
            raise DataError(
                f"{path}: {member} cannot be read ({error}); the zip is damaged. Download it again."
            ) from None

    return [m[len(prefix) :] for m in files if m.startswith(prefix)], read


def _check_alphabets(path: Path, name: str, drawings: dict[str, list[str]]) -> None:
    """Every official alphabet with every character of it, and nothing else."""
    expected = {
        f"{alphabet}/character{c:02d}"
        for alphabet, count in split_lists()["sets"][name].items()
        for c in range(1, count + 1)
    }
    missing, extra = sorted(expected - drawings.keys()), sorted(drawings.keys() - expected)
    if missing or extra:
        alphabets = len({key.split("/")[0] for key in drawings})
        raise DataError(
            f"{path} does not hold the official {name} set ({len(split_lists()['sets'][name])} alphabets, "
            f"{len(expected)} characters): it has {alphabets} alphabets and {len(drawings)} characters"
            + (f"; missing {len(missing)}, e.g. {', '.join(missing[:3])}" if missing else "")
            + (f"; not in the official set: {len(extra)}, e.g. {', '.join(extra[:3])}" if extra else "")
            + ". Use the complete official file (a partial extraction or the 'small' background sets do not do)."
        )


def decode(data: bytes, origin: str, size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 [size, size, 1], strokes 255 and background 0, resized as the reference codes do."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            resized = image.resize((size, size), Image.Resampling.LANCZOS).convert("L")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"Omniglot drawing {origin} cannot be decoded ({type(error).__name__}: {error}). The file is corrupt or "
            "truncated; replace it with a good copy of the official file and prepare again."
        ) from None
    return (255 - np.asarray(resized, dtype=np.uint8))[:, :, None]


def decode_set(official: OfficialSet) -> dict[str, np.ndarray]:
    """{character: uint8 [drawings, 28, 28, 1]} of a whole set, decoded in memory (a few MB)."""
    total = sum(len(v) for v in official.drawings.values())
    out = {}
    with tqdm(total=total, desc=f"decode {Path(official.origin).name}", unit="img") as bar:
        for character, members in official.drawings.items():
            out[character] = np.stack([decode(official.read(m), f"{official.origin}: {m}") for m in members])
            bar.update(len(members))
    return out


def write_scheme(out: Path, scheme: str, drawings: dict[str, np.ndarray]) -> None:
    """One split scheme's cache in `out`, characters in sorted order, drawings in file order."""
    writer = CacheWriter(out, NAME, f"official-{scheme}", IMAGE_SIZE, channels=1)
    for split, characters in scheme_characters(scheme).items():
        counts = [len(drawings[c]) for c in characters]
        writer.write_split(split, characters, counts, (image for c in characters for image in drawings[c]))
    writer.finish()
