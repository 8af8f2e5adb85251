"""Benchmarks B1-B8 (docs/benchmarks.md): the project's learners against peers, with correctness gates.

python scripts/bench.py                                  # CPU: small sizes, one thread
python scripts/bench.py --device cuda --out outputs/bench/bench_cuda.json   # GPU: paper sizes
python scripts/bench.py --only B1,B3 --sizes small
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from conml.benchmarks.scale import SCALES, BenchRun
from conml.benchmarks.suite import run_suite
from conml.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (the GPU if there is one)")
    parser.add_argument(
        "--sizes", choices=sorted(SCALES), help="problem sizes; default: paper on a GPU, small on a CPU"
    )
    parser.add_argument("--only", help="comma-separated case ids, e.g. B1,B3 (default: all)")
    parser.add_argument("--out", type=Path, help="write the results and the environment to this JSON file")
    parser.add_argument(
        "--threads", type=int, help="CPU threads; default 1 on a CPU, where CPU time is then a stable clock"
    )
    parser.add_argument(
        "--cpu-memory", action="store_true", help="also profile peak memory on a CPU (slow: ~10 iterations each)"
    )
    args = parser.parse_args(argv)

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"error: --device {args.device}: torch {torch.__version__} sees no CUDA device; use --device cpu.",
            file=sys.stderr,
        )
        return 2
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    scale = SCALES[args.sizes or ("paper" if device.type == "cuda" else "small")]
    try:
        run_suite(BenchRun(scale, device, args.cpu_memory), args.only.split(",") if args.only else None, args.out)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
