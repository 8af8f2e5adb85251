"""Plan the GPU memory of every preset without a GPU: docs/memory.md (method: conml/gpu_check/memory_plan.py).

python scripts/memory_plan.py                          # every preset at its paper sizes (about half an hour on 2 CPU cores)
python scripts/memory_plan.py --presets 'miniimagenet-*'     # some presets
python scripts/memory_plan.py --tiny --out /tmp/memory.md   # tiny sizes: checks the command in seconds
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from conml.composer import CONFIGS
from conml.gpu_check.memory_plan import plan, write_markdown
from conml.gpu_check.presets import TINY_PRESETS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", help="comma-separated preset names or globs (default: all; with --tiny a few)")
    parser.add_argument(
        "--out", type=Path, default=CONFIGS.parent / "docs" / "memory.md", help="the Markdown table (a .json beside it)"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a check of the command, not a plan")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the Markdown from the .json beside it (e.g. after a GPU report was added)",
    )
    parser.add_argument(
        "--check-below",
        type=float,
        default=20.0,
        help="also measure B=4 against the fit where B=1 and B=2 took less than this many seconds",
    )
    args = parser.parse_args(argv)
    if args.render:
        write_markdown(args.out, json.loads(args.out.with_suffix(".json").read_text()))
        print(f"wrote {args.out}")
        return 0
    patterns = args.presets.split(",") if args.presets else (list(TINY_PRESETS) if args.tiny else None)
    try:
        entries = plan(args.out, patterns, args.tiny, args.check_below)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 1 if any(e.error for e in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
