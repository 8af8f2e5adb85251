"""Prove the project on one GPU in minutes: correctness on the device, every preset, the benchmarks.

    python scripts/gpu_check.py                         # the GPU: writes docs/gpu/<device>.md and .json
    python scripts/gpu_check.py --device cpu --tiny     # the same code on a CPU at tiny sizes (the test suite runs this)
    python scripts/gpu_check.py --parts presets --presets 'miniimagenet-*'

No dataset needs to be prepared (synthetic episodes of the real shapes stand in) and nothing is
downloaded. What each part does: conml/gpu_check/check.py; the report: docs/gpu/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from conml.gpu_check.check import PARTS, ROOT, Options, run_check
from conml.gpu_check.presets import preset_names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto (the GPU if there is one)")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="tiny sizes and a few presets, for a CPU (checks the code, measures nothing)",
    )
    parser.add_argument(
        "--out", type=Path, help="report folder (default: docs/gpu on a GPU at paper sizes, else outputs/gpu_check)"
    )
    parser.add_argument(
        "--budget", type=float, help="seconds for the whole check (default 420 at paper sizes, 300 with --tiny)"
    )
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, in this order: {','.join(PARTS)}")
    parser.add_argument("--presets", help="comma-separated preset names or globs (default: all; with --tiny a few)")
    parser.add_argument(
        "--data",
        choices=("auto", "synthetic"),
        default="auto",
        help="auto: prepared datasets where there are some, else synthetic",
    )
    parser.add_argument(
        "--steps", type=int, help="timed steps per preset after one warm-up step (default 3; 1 with --tiny)"
    )
    args = parser.parse_args(argv)

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(
            f"--device {args.device}: torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA device; use --device cpu --tiny"
        )
    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"--parts: unknown {unknown}; choose among {list(PARTS)}")
    presets = args.presets.split(",") if args.presets else None
    try:
        preset_names(presets)
    except ValueError as error:
        parser.error(f"--presets: {error}")
    if device.type == "cpu":
        torch.set_num_threads(1)  # small CPU checks: one thread is faster than oversubscribing shared cores
    paper_on_gpu = device.type == "cuda" and not args.tiny
    options = Options(
        device=device,
        tiny=args.tiny,
        out=args.out or ROOT / ("docs/gpu" if paper_on_gpu else "outputs/gpu_check"),
        budget=args.budget or (300.0 if args.tiny else 420.0),
        parts=[p for p in PARTS if p in parts],
        presets=presets,
        data=args.data,
        steps=args.steps or (1 if args.tiny else 3),
    )
    return run_check(options)


if __name__ == "__main__":
    sys.exit(main())
