"""Command line of dataset preparation: a download folder in, the prepared cache out."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from conml.data.images import miniimagenet, tieredimagenet
from conml.data.images.cache import IMAGE_SIZE, summarize
from conml.data.out_folder import check_out_folder
from conml.errors import UserError

_FORMATS = {module.NAME: module for module in (miniimagenet, tieredimagenet)}


def main(dataset: str, argv: list[str] | None = None) -> None:
    """Parse `argv`, prepare `dataset`, print what was written; user errors exit with status 2."""
    module = _FORMATS[dataset]
    parser = argparse.ArgumentParser(
        description=f"Convert a {dataset} download into the uint8 cache that training reads.",
        epilog=f"Accepted source layouts:\n{module.LAYOUTS}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", type=Path, required=True, help="folder holding the downloaded files")
    conml_data = os.environ.get("CONML_DATA")
    default_out = Path(conml_data or "data") / dataset
    parser.add_argument(
        "--out", type=Path, default=default_out, help=f"cache folder (default: {default_out}, under $CONML_DATA if set)"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes decoding images (default: all cores)"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=IMAGE_SIZE,
        help="side of the square cached images (default: %(default)s, the benchmark's)",
    )
    args = parser.parse_args(argv)
    prepare = getattr(module, f"prepare_{dataset}")
    try:
        check_out_folder(args.out, "--out", conml_data)
        prepare(args.source, args.out, args.workers, args.image_size)
    except UserError as error:
        print(f"\nerror: {error}\n", file=sys.stderr)
        sys.exit(2)
    print(summarize(args.out, module.STANDARD))
