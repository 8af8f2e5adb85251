"""Validation curves of runs: the validation metric at each validation step, read from metrics.jsonl.

    python scripts/val_curves.py <run folder> [<run folder> ...] [--every 1000] [--json out.json]

Prints a Markdown table (one row per run: its folder name and the metric at every validation step)
and, with --json, writes {run folder name: {"metric": ..., "steps": [...], "values": [...]}}, so that a
results page can show whether a shortened run's curve had flattened without committing its logs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def curve(run_dir: Path) -> dict:
    """{"metric", "steps", "values"} of the run's validation entries (the first val/<name> key that is not a CI)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(
            f"\nerror: {run_dir} holds no metrics.jsonl; give the folder of a run (outputs/<name>/<date>_<time>).\n"
        )
    steps, values, metric = [], [], None
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        keys = [k for k in entry if k.startswith("val/") and not k.endswith("_ci95")]
        if not keys:
            continue
        metric = metric or keys[0]
        if metric in entry:
            steps.append(entry["step"])
            values.append(entry[metric])
    return {"metric": metric, "steps": steps, "values": values}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders")
    parser.add_argument(
        "--every", type=int, default=1, help="print only steps that are multiples of this (the JSON has all)"
    )
    parser.add_argument("--json", type=Path, help="also write the curves to this file")
    args = parser.parse_args(argv)
    curves = {run.name: curve(run) for run in args.runs}
    if args.every < 1:
        raise SystemExit(f"\nerror: --every must be at least 1, got {args.every}.\n")
    steps = sorted({s for c in curves.values() for s in c["steps"] if s % args.every == 0})
    print("| run | " + " | ".join(str(s) for s in steps) + " |")
    print("|---|" + "---|" * len(steps))
    for name, c in curves.items():
        by_step = dict(zip(c["steps"], c["values"]))
        print(f"| {name} | " + " | ".join(f"{by_step[s]:.1f}" if s in by_step else "" for s in steps) + " |")
    if args.json:
        args.json.write_text(json.dumps(curves, indent=1) + "\n")
        print(f"written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
