"""ConML's gradient share at initialisation for every learner and psi option (docs/results/conml_signal.md).

    python scripts/conml_signal.py --out docs/results/conml_signal.json [--seeds 0,1,2] [--image-tasks 8] \
        [--data all|synthetic|omniglot]
    python scripts/conml_signal.py --table docs/results/conml_signal.json   # print the Markdown table again

Prints progress with an ETA, writes the JSON after every case (a rerun skips the cases it holds; the
rows of cases left out by --data stay as they are), and prints the Markdown table the doc holds. The
Omniglot cases read the prepared data under $CONML_DATA (`make data-omniglot`); without it they are
refused before anything is measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from conml.errors import UserError, exit_with
from conml.signal_survey import SURVEYS, measure, paper_cases, require_data


def markdown(rows: list[dict]) -> str:
    """The table of docs/results/conml_signal.md: median share over seeds, its range, d_in, d_out."""
    lines = [
        "| learner | psi | data | gradient share (median) | range over seeds | d_in | d_out | tasks | overrides of the preset |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        low, high = min(row["share_by_seed"]), max(row["share_by_seed"])
        lines.append(
            f"| {row['learner']} | {row['psi']} | {row.get('data', '')} | {row['share']:.1e} | {low:.1e} – {high:.1e} | {row['d_in']:.2e} | {row['d_out']:.2e} "
            f"| {row['tasks']} | `{row['command']}` |"
        )
    return "\n".join(lines)


def survey(seeds: list[int], image_tasks: int, out: Path, data: str = "all") -> list[dict]:
    """Measure every case of `data` ('all' or a key of SURVEYS), writing the JSON after each one. Cases
    already in `out` with these seeds are kept (resumable), and so are those `data` leaves out."""
    done = {(r["learner"], r["psi"]): r for r in json.loads(out.read_text())["rows"]} if out.exists() else {}
    chosen = [label for key, labels in SURVEYS.items() if data in ("all", key) for label in labels]
    # One slot per case in table order: the kept row, or None while it waits to be measured.
    cases, rows = [], []
    for case in paper_cases(image_tasks):
        kept = done.get((case.learner, case.psi))
        if kept is not None and (kept["seeds"] == seeds or case.data not in chosen):
            rows.append({**kept, "data": case.data})
        elif case.data in chosen:
            cases.append((len(rows), case))
            rows.append(None)
    require_data([case for _, case in cases])
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for measured, (slot, case) in enumerate(cases, 1):
        runs = [measure(case, seed) for seed in seeds]
        rows[slot] = {
            **runs[0],
            "share": statistics.median(r["share"] for r in runs),
            "share_by_seed": [r["share"] for r in runs],
            "seeds": seeds,
        }
        written = [row for row in rows if row is not None]
        out.write_text(json.dumps({"torch": torch.__version__, "device": "cpu", "rows": written}, indent=2))
        eta = (time.perf_counter() - started) / measured * (len(cases) - measured)
        print(
            f"[{measured}/{len(cases)}, ETA {eta:.0f} s] {case.learner:<28} {case.psi:<40} {case.data:<24} "
            f"share {rows[slot]['share']:.2e}",
            flush=True,
        )
    return [row for row in rows if row is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, help="measure, then write the JSON here")
    action.add_argument("--table", type=Path, help="print the Markdown table of an earlier JSON")
    parser.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds; the share is reported per seed and as a median"
    )
    parser.add_argument(
        "--image-tasks",
        type=int,
        default=8,
        help="tasks per meta-batch for the image learners on synthetic 84 px episodes (CPU memory); the Omniglot "
        "cases take their table cells' own",
    )
    parser.add_argument(
        "--data",
        choices=["all", *SURVEYS],
        default="all",
        help="which cases to measure: synthetic (sine waves, in-context linear regression, synthetic 84 px images; "
        "no dataset needed), omniglot (the image learners on real Omniglot episodes; needs `make data-omniglot`) "
        "or all",
    )
    args = parser.parse_args()
    if args.table is not None:
        print(markdown(json.loads(args.table.read_text())["rows"]))
        return
    torch.set_num_threads(1)
    try:
        rows = survey([int(s) for s in args.seeds.split(",")], args.image_tasks, args.out, args.data)
    except UserError as error:
        exit_with(error)
    print(f"wrote {args.out}\n\n{markdown(rows)}")


if __name__ == "__main__":
    main()
