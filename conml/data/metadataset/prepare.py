"""Index and cache converted Meta-Dataset records once, so training never reads a TFRecord (`make data-metadataset`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from conml.data.metadataset.cache import build_cache
from conml.data.metadataset.source import ALL_SOURCES
from conml.data.metadataset.spec import check_splits, load_spec
from conml.data.out_folder import check_out_folder
from conml.errors import DataError, UserError

USAGE = """Build the uint8 image cache of each Meta-Dataset source from its converted TFRecords.

    python scripts/prepare_metadataset.py --records <RECORDS> [--out $CONML_DATA/metadataset] [--image-size 84]
        [--sources ilsvrc_2012 omniglot ...] [--max-per-class N] [--workers N] [--splits <meta_dataset/dataset_conversion/splits>]

<RECORDS> is the folder the Meta-Dataset conversion wrote: one sub-folder per source holding
dataset_spec.json and <class id>.tfrecords. Sources without a folder there are skipped.
--out defaults to metadataset/ under $CONML_DATA (data/ if unset), where training looks for it.
"""


def default_out(conml_data: str | None) -> Path:
    """Where training looks for the caches: ${paths.data_dir}/metadataset, i.e. under $CONML_DATA or data/."""
    return Path(conml_data or "data") / "metadataset"


def prepare(
    records: Path,
    out: Path,
    image_size: int,
    sources: list[str],
    max_per_class: int | None,
    workers: int,
    splits: Path | None,
) -> list[Path]:
    """Build the cache of every requested source found under `records`; returns the index files written."""
    found = [name for name in sources if (records / name / "dataset_spec.json").is_file()]
    if not found:
        raise DataError(
            f"No Meta-Dataset source folder (<source>/dataset_spec.json) under {records} for {sources}. Point --records "
            "(RECORDS=... for make) at the folder Meta-Dataset's conversion wrote; see docs/datasets_metadataset.md."
        )
    written = []
    for name in found:
        spec = load_spec(records / name)
        if splits is not None:
            print(f"{name}: split check: {check_splits(spec, splits)}")
        written.append(build_cache(spec, out, image_size, max_per_class, workers=workers))
        print(f"{name}: {len(spec.classes)} classes cached -> {written[-1]}")
    skipped = sorted(set(sources) - set(found))
    if skipped:
        print(f"Not found under {records}, skipped: {', '.join(skipped)}")
    return written


def main(argv: list[str] | None = None) -> None:
    conml_data = os.environ.get("CONML_DATA")
    parser = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--records",
        type=Path,
        required=True,
        help="folder of converted Meta-Dataset records (one sub-folder per source)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=default_out(conml_data),
        help=f"cache root, dataset.root of the configs (default: {default_out(conml_data)}, under $CONML_DATA if set)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=84,
        help="84 for Conv/ResNet-18 at Meta-Dataset's size, 126 for CNAPs-style backbones at that size",
    )
    parser.add_argument("--sources", nargs="+", default=list(ALL_SOURCES), choices=ALL_SOURCES, metavar="SOURCE")
    parser.add_argument(
        "--max-per-class",
        type=int,
        default=None,
        help="keep at most this many images of a class (seeded subset; e.g. for quickdraw)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes decoding class files in parallel")
    parser.add_argument(
        "--splits",
        type=Path,
        default=None,
        help="Meta-Dataset's dataset_conversion/splits folder: check each source's class names per split against its "
        "<source>_splits.json; omniglot and ilsvrc_2012 have no split file and are checked against the "
        "dataset_specs/ shipped beside it, or by split sizes where that folder is absent",
    )
    args = parser.parse_args(argv)
    try:
        check_out_folder(args.out, "--out", conml_data)
        prepare(args.records, args.out, args.image_size, args.sources, args.max_per_class, args.workers, args.splits)
    except UserError as error:
        print(f"\nerror: {error}\n", file=sys.stderr)
        sys.exit(2)
