"""ConML's gradient share at initialisation for every learner and psi option (docs/results/conml_signal.md).

    python scripts/conml_signal.py --out docs/results/conml_signal.json [--seeds 0,1,2] [--image-tasks 8]
    python scripts/conml_signal.py --table docs/results/conml_signal.json   # print the Markdown table again

Prints progress with an ETA, writes the JSON after every case (a rerun skips the cases it holds),
and prints the Markdown table the doc holds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from conml.signal_survey import measure, paper_cases


def markdown(rows: list[dict]) -> str:
    """The table of docs/results/conml_signal.md: median share over seeds, its range, d_in, d_out."""
    lines = [
        "| learner | psi | gradient share (median) | range over seeds | d_in | d_out | tasks | overrides of the preset |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        low, high = min(row["share_by_seed"]), max(row["share_by_seed"])
        lines.append(
            f"| {row['learner']} | {row['psi']} | {row['share']:.1e} | {low:.1e} – {high:.1e} | {row['d_in']:.2e} | {row['d_out']:.2e} "
            f"| {row['tasks']} | `{row['command']}` |"
        )
    return "\n".join(lines)


def survey(seeds: list[int], image_tasks: int, out: Path) -> list[dict]:
    """Measure every case, writing the JSON after each one; cases already in `out` are kept (resumable)."""
    done = {(r["learner"], r["psi"]): r for r in json.loads(out.read_text())["rows"]} if out.exists() else {}
    cases = paper_cases(image_tasks)
    rows, started, measured = [], time.perf_counter(), 0
    for number, case in enumerate(cases, 1):
        if (case.learner, case.psi) in done and done[(case.learner, case.psi)]["seeds"] == seeds:
            rows.append(done[(case.learner, case.psi)])
            continue
        runs = [measure(case, seed) for seed in seeds]
        rows.append(
            {
                **runs[0],
                "share": statistics.median(r["share"] for r in runs),
                "share_by_seed": [r["share"] for r in runs],
                "seeds": seeds,
            }
        )
        out.write_text(json.dumps({"torch": torch.__version__, "device": "cpu", "rows": rows}, indent=2))
        measured += 1
        eta = (time.perf_counter() - started) / measured * (len(cases) - number)
        print(
            f"[{number}/{len(cases)}, ETA {eta:.0f} s] {case.learner:<28} {case.psi:<40} share {rows[-1]['share']:.2e}",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, help="measure, then write the JSON here")
    action.add_argument("--table", type=Path, help="print the Markdown table of an earlier JSON")
    parser.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds; the share is reported per seed and as a median"
    )
    parser.add_argument(
        "--image-tasks", type=int, default=8, help="tasks per meta-batch for the image learners (CPU memory)"
    )
    args = parser.parse_args()
    if args.table is not None:
        print(markdown(json.loads(args.table.read_text())["rows"]))
        return
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = survey([int(s) for s in args.seeds.split(",")], args.image_tasks, args.out)
    print(f"wrote {args.out}\n\n{markdown(rows)}")


if __name__ == "__main__":
    main()
