"""ConML's gradient share at initialisation for every learner and psi option (docs/results/conml_signal.md).

    python scripts/conml_signal.py --out docs/results/conml_signal.json [--seeds 0,1,2] [--image-tasks 8] \
        [--data all|synthetic|omniglot]
    python scripts/conml_signal.py --table docs/results/conml_signal.json   # print the Markdown table again
    python scripts/conml_signal.py --overrides experiment=sine/conml learner.representation=update [--seeds 0,1,2] \
        [--synthetic-images]                                                # any config: one row, printed

Prints progress with an ETA, writes the JSON after every case (a rerun skips the cases it holds; the
rows of cases left out by --data stay as they are), and prints the Markdown table the doc holds. The
Omniglot cases read the prepared data under $CONML_DATA (`make data-omniglot`); without it they are
refused before anything is measured. --overrides measures one meta-batch of the config those Hydra
overrides compose (as `python -m conml.train OVERRIDE ...` would, on the CPU), once per seed, and
prints its row of the table; its episodes come from its own dataset (prepared where it needs data), or
with --synthetic-images from the synthetic 84 px images of the survey's image cases.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from conml.build import SUPPLIED, build_source_and_learner
from conml.checks.settings import (
    check_combinations,
    check_known_keys,
    check_learner_kind,
    check_learning_rates,
    check_ranges,
)
from conml.checks.targets import check_targets
from conml.errors import ConfigError, UserError, exit_with
from conml.signal_survey import SURVEYS, SYNTHETIC_IMAGES, Case, compose_case, measure, paper_cases, require_data
from conml.task_kind import CLASSIFICATION

# What `--overrides` may not set: the seed is --seeds' (one measurement per seed).
SET_BY_THE_SCRIPT = ("seed",)


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
        rows[slot] = over_seeds(case, seeds)
        written = [row for row in rows if row is not None]
        out.write_text(json.dumps({"torch": torch.__version__, "device": "cpu", "rows": written}, indent=2))
        eta = (time.perf_counter() - started) / measured * (len(cases) - measured)
        print(
            f"[{measured}/{len(cases)}, ETA {eta:.0f} s] {case.learner:<28} {case.psi:<40} {case.data:<24} "
            f"share {rows[slot]['share']:.2e}",
            flush=True,
        )
    return [row for row in rows if row is not None]


def over_seeds(case: Case, seeds: list[int]) -> dict:
    """One row of the table: the first seed's measurement, with the median share over `seeds` and each seed's."""
    runs = [measure(case, seed) for seed in seeds]
    return {
        **runs[0],
        "share": statistics.median(r["share"] for r in runs),
        "share_by_seed": [r["share"] for r in runs],
        "seeds": seeds,
    }


def overrides_case(overrides: list[str], synthetic_images: bool = False) -> Case:
    """The case of any Hydra overrides: their `experiment=` as the preset, the others applied after it; refused in
    one paragraph when they name no preset, do not compose, set the seed, or turn ConML off."""
    keys = [override.lstrip("+~").partition("=")[0] for override in overrides]
    if any(key in SET_BY_THE_SCRIPT for key in keys):
        raise ConfigError(
            f"--overrides {' '.join(overrides)}: the seed is not an override here: the share is measured once per "
            "seed of --seeds (default 0,1,2) and reported as their median. Pass --seeds instead."
        )
    presets = [o.partition("=")[2] for o, key in zip(overrides, keys) if key == "experiment"]
    if not presets:
        raise ConfigError(
            f"--overrides {' '.join(overrides)} name no experiment preset: a measured config is composed from one "
            "(configs/experiment/), with the other overrides on top. Add one, e.g. experiment=sine/conml, "
            "experiment=fewshot/protonet or experiment=icl/paper."
        )
    others = tuple(o for o, key in zip(overrides, keys) if key != "experiment")
    probe = Case("", "", presets[-1], others)
    try:
        cfg = compose_case(probe, seed=0)
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise ConfigError(
            f"--overrides {' '.join(overrides)} do not compose a config: {str(error).strip().splitlines()[0]} "
            "They are the overrides of `python -m conml.train`, e.g. --overrides experiment=sine/conml "
            "learner.representation=update; try them there with debug=tiny to see the full message."
        ) from None
    # The start-up checks of `python -m conml.train` (but the run name's and tags' references, which need the
    # Hydra runtime): a run it refuses is refused here with the same paragraph.
    for check in (check_known_keys, check_ranges, check_learning_rates, check_combinations):
        check(cfg)
    if synthetic_images:
        check_targets(cfg, SUPPLIED)
        check_learner_kind(cfg, CLASSIFICATION)
    else:
        build_source_and_learner(cfg, torch.device("cpu"))  # checks the targets first
    if not cfg.conml.enabled:
        raise ConfigError(
            f"--overrides {' '.join(overrides)} compose a run with ConML off (conml.enabled=false), which has no "
            "ConML term to measure the gradient share of. Leave out conml=off (or set conml=on)."
        )
    learner = cfg.learner._target_.rsplit(".", 1)[-1]
    data = SYNTHETIC_IMAGES if synthetic_images else cfg.dataset._target_.rsplit(".", 1)[-1]
    return Case(learner, str(cfg.learner.get("representation", "-")), probe.preset, others, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, help="measure, then write the JSON here")
    action.add_argument("--table", type=Path, help="print the Markdown table of an earlier JSON")
    action.add_argument(
        "--overrides",
        nargs="+",
        metavar="OVERRIDE",
        help="measure the config these Hydra overrides compose (e.g. experiment=sine/conml learner=reptile) and "
        "print its row",
    )
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
    parser.add_argument(
        "--synthetic-images",
        action="store_true",
        help="with --overrides: synthetic 84 px 5-way 1-shot episodes instead of the dataset's (no data needed)",
    )
    args = parser.parse_args()
    if args.synthetic_images and args.overrides is None:
        parser.error("--synthetic-images applies only with --overrides (the survey chooses each case's episodes)")
    if args.table is not None:
        print(markdown(json.loads(args.table.read_text())["rows"]))
        return
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        if args.overrides is not None:
            row = over_seeds(overrides_case(args.overrides, args.synthetic_images), seeds)
            print(markdown([{**row, "command": " ".join(args.overrides)}]))
            return
        rows = survey(seeds, args.image_tasks, args.out, args.data)
    except UserError as error:
        exit_with(error)
    print(f"wrote {args.out}\n\n{markdown(rows)}")


if __name__ == "__main__":
    main()
