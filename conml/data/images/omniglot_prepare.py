"""Preparing Omniglot: download the official files (or take them from a folder), check, decode, cache.

`python scripts/prepare_omniglot.py` downloads `images_background.zip`, `images_evaluation.zip` and
`all_runs.zip` from the official repository (brendenlake/omniglot, the files torchvision downloads)
into `<out>/downloads/`, checks each against its published MD5, and prepares the caches;
`--source <folder>` prepares from files already on disk instead, without a download, as does an output
folder that already holds them (official files copied to `$CONML_DATA/omniglot/`). Every input is
read, checked and decoded in memory before anything is written, so bad input leaves the output
folder as it was.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from conml.data.images import omniglot, omniglot_runs
from conml.data.images.cache import summarize
from conml.errors import DataError, UserError

URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{name}.zip"
# torchvision.datasets.Omniglot's sums for the two sets; all_runs.zip's is the official file's.
MD5 = {
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
    "all_runs": "e8996daecdf12afeeb4a53a179f06b19",
}


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download(folder: Path, url: str = URL) -> None:
    """The official zips into `folder`, each checked against its MD5; files already there and intact are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, expected in MD5.items():
        path = folder / f"{name}.zip"
        if path.is_file() and md5_file(path) == expected:
            continue
        partial = path.with_name(f".{path.name}.partial")
        address = url.format(name=name)
        print(f"Downloading {address}")
        try:
            with urllib.request.urlopen(address, timeout=60) as response, open(partial, "wb") as handle:
                while chunk := response.read(1 << 20):
                    handle.write(chunk)
        except (urllib.error.URLError, OSError) as error:
            partial.unlink(missing_ok=True)
            raise DataError(
                f"Downloading {address} failed ({error}). Without internet, copy the official images_background.zip, "
                "images_evaluation.zip and all_runs.zip into a folder and run `make data-omniglot SOURCE=<that folder>`."
            ) from None
        found = md5_file(partial)
        if found != expected:
            partial.unlink()
            raise DataError(
                f"{address} arrived with MD5 {found}, not the published {expected}: the download is damaged or the "
                "file was changed upstream. Nothing was kept; run the command again, or prepare from a checked copy "
                "with SOURCE=<folder>."
            )
        os.replace(partial, path)


def prepare_omniglot(source: Path, out: Path) -> None:
    """Both split schemes' caches and Lake's runs in `out`, from the official files in `source`."""
    source, out = Path(source), Path(out)
    if not source.exists():
        raise DataError(f"The Omniglot source folder {source} does not exist. Expected:\n{omniglot.LAYOUTS}")
    if not source.is_dir():
        raise DataError(
            f"The Omniglot source {source} is a file, not a folder; give the folder that holds the official files."
        )
    if out.exists() and not out.is_dir():
        raise DataError(f"The output {out} is a file, not a folder; choose another --out or remove the file.")
    sets = {name: omniglot.open_set(source, name) for name in omniglot.SETS}
    for name, official in sets.items():
        if official.origin.endswith(".zip") and md5_file(Path(official.origin)) != MD5[name]:
            print(
                f"note: {official.origin} is not byte for byte the published zip (MD5 differs); every drawing in it is checked instead."
            )
    drawings = {
        character: images for official in sets.values() for character, images in omniglot.decode_set(official).items()
    }
    runs = omniglot_runs.read_runs(source)
    for scheme in ("vinyals", "lake"):
        omniglot.write_scheme(out / scheme, scheme, drawings)
    if runs is None:
        print(f"note: {source} holds no all_runs.zip: Lake's 20 one-shot runs were not prepared.")
    else:
        omniglot_runs.write_runs(out / omniglot_runs.FILE, runs)


def main(argv: list[str] | None = None) -> None:
    """Parse `argv`, prepare Omniglot, print what was written; user errors exit with status 2."""
    default_out = Path(os.environ.get("CONML_DATA", "data")) / omniglot.NAME
    parser = argparse.ArgumentParser(
        description="Prepare Omniglot: download the official files (or read them from --source) into the caches training reads.",
        epilog=f"Accepted source layouts:\n{omniglot.LAYOUTS}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--source",
        type=Path,
        help="folder holding the official files (default: the output folder if it holds them, else download them)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=default_out,
        help=f"output folder (default: {default_out}, under $CONML_DATA if set)",
    )
    args = parser.parse_args(argv)
    try:
        if args.out.exists() and not args.out.is_dir():
            raise DataError(f"The output {args.out} is a file, not a folder; choose another --out or remove the file.")
        source = args.source
        if source is None and omniglot.find(args.out, omniglot.SETS[0]) is not None:
            source = args.out  # the official files were put where the caches go (e.g. $CONML_DATA/omniglot)
        if source is None:
            source = args.out / "downloads"
            download(source)
        prepare_omniglot(source, args.out)
    except UserError as error:
        print(f"\nerror: {error}\n", file=sys.stderr)
        sys.exit(2)
    for scheme in ("vinyals", "lake"):
        print(summarize(args.out / scheme, omniglot.STANDARD[scheme]))
    if (args.out / omniglot_runs.FILE).is_file():
        print(f"Lake's 20 one-shot runs: {args.out / omniglot_runs.FILE}")
