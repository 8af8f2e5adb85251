"""Error against the number of in-context examples for one or two ICL runs, plus the baselines.

    python scripts/icl_curves.py RUN_DIR [CONML_RUN_DIR] [--episodes 1280] [--out DIR]

Every run is evaluated on the test tasks of the first run's dataset. Writes curves.json and
curves.png to --out (default: RUN_DIR/icl_curves); with two runs it also prints ConML's
relative minimum error and shot spare of the second against the first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conml.errors import ConfigError, UserError
from conml.icl_curves import (
    baseline_curves,
    check_same_test_tasks,
    comparison,
    learner_curve,
    load_run,
    plot,
    write_json,
)
from conml.train import resolve_device


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "runs", nargs="+", type=Path, help="run directories: the plain run first, then (optionally) the ConML run"
    )
    parser.add_argument(
        "--episodes", type=int, default=None, help="test tasks (default: the first run's eval.episodes)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="prompts per batch (default: the first run's eval.batch_size)"
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        choices=["best", "last"],
        help="default: the one each run meta-tested (eval.checkpoint)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <first run>/icl_curves)")
    args = parser.parse_args(argv)
    if len(args.runs) > 2:
        parser.error("give one run, or two to compare (the plain run first)")

    for option, value in (("--episodes", args.episodes), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise ConfigError(
                f"{option} {value} is out of range: it counts test prompts, at least 1; leave it out for the first "
                "run's own eval setting."
            )
    device = resolve_device(args.device)
    runs = [load_run(run_dir, args.checkpoint, device) for run_dir in args.runs]
    check_same_test_tasks(runs)
    source, settings = runs[0].source, runs[0].config["eval"]
    episodes = settings["episodes"] if args.episodes is None else args.episodes
    batch_size = settings["batch_size"] if args.batch_size is None else args.batch_size

    learned = [learner_curve(run.name, run.learner, source, episodes, batch_size, device) for run in runs]
    baselines = baseline_curves(source, episodes, batch_size)
    metrics = comparison(learned)

    out = args.out or args.runs[0] / "icl_curves"
    out.mkdir(parents=True, exist_ok=True)
    test_set = {
        "dataset": runs[0].config["dataset"],
        "split": "test",
        "episodes": episodes,
        "checkpoints": {run.name: run.checkpoint for run in runs},
    }
    write_json(out / "curves.json", learned, baselines, metrics, test_set)
    dataset = runs[0].config["dataset"]
    functions = dataset["functions"]["_target_"].rsplit(".", 1)[-1]
    plot(
        learned + baselines,
        len(learned),
        out / "curves.png",
        f"{functions}: d = {dataset['dims']}, {dataset['points']} points, {episodes} test prompts",
    )

    curves = learned + baselines
    print(f"squared error on test tasks 0..{episodes - 1} (mean over tasks) — {out / 'curves.json'}")
    for i, c in enumerate(curves, 1):
        print(f"  [{i}] {c.name}")
    print("shots " + "".join(f"{f'[{i}]':>10}" for i in range(1, len(curves) + 1)))
    for i, k in enumerate(learned[0].shots):
        print(f"{k:>5} " + "".join(f"{c.mean[i]:>10.4f}" for c in curves))
    if metrics:
        spare = metrics["shot_spare"]
        print(f"\n{metrics['conml']['name']} vs {metrics['plain']['name']}:")
        print(f"  relative minimum error: {metrics['relative_minimum_error']:.4f}")
        reached = "never reaches the plain run's minimum" if spare is None else spare
        print(f"  shot spare:             {reached}")
    return metrics


if __name__ == "__main__":
    try:
        main()
    except UserError as error:
        print(f"\nerror: {error}\n", file=sys.stderr)
        sys.exit(2)
