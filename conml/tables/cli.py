"""Re-run a paper table and set it beside the paper's numbers.

    python scripts/table.py run TABLE [--seeds 0,1,2] [--smoke] [--out DIR | --docs] [OVERRIDE ...]
    python scripts/table.py aggregate TABLE RUNS_DIR [RUNS_DIR ...] [--seeds ...] [--wandb ENTITY/PROJECT] [--out DIR | --docs] [--mix]
    python scripts/table.py list

`run` launches one Hydra multirun over the table's presets and seeds (OVERRIDEs such as
trainer.steps=2000 or hydra/launcher=slurm go to every job), then aggregates that sweep.
`aggregate` reads the results.json files under RUNS_DIR (a sweep folder, or outputs/) and, with
--wandb, the finished runs of the table's W&B groups. Both say which runs they used and write
<table>.md, .tex, .json and the table's figures (PNG) into the sweep folder (`run`) or the first
RUNS_DIR (`aggregate`), into --out DIR, or, only with --docs, over the committed docs/tables/. They
log the figures to W&B (offline unless logger.mode says otherwise). Smoke runs beside real ones, or
runs of one preset at different step budgets, are refused unless --mix is given.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from conml.errors import ConfigError, UserError
from conml.figures import log_figures
from conml.tables import render
from conml.tables.aggregate import Aggregate, aggregate
from conml.tables.catalog import TABLES
from conml.tables.multirun import available, multirun, new_sweep_dir, sweep_parameters
from conml.tables.provenance import check_not_mixed, describe
from conml.tables.runs import collect_runs, wandb_runs
from conml.tables.spec import Table

DOCS_TABLES = Path("docs/tables")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and (args.action != "run" or any(e.startswith("-") for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.action == "run":
        args.overrides += extra  # overrides may come before or after the options
    command = "python scripts/table.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        if args.action == "list":
            return _list()
        table = _table(args.table)
        seeds = table.seeds if args.seeds is None else tuple(int(s) for s in args.seeds.split(","))
        if args.action == "run":
            return _run(table, seeds, args, command)
        roots = [Path(p) for p in args.runs]
        runs = collect_runs(roots) + (wandb_runs(args.wandb, table.presets) if args.wandb else [])
        out_dir = DOCS_TABLES if args.docs else args.out or roots[0]
        report(table, runs, seeds, out_dir, command, not args.no_figures, args.wandb_mode, roots[0], mix=args.mix)
        return 0
    except UserError as error:
        print(f"\nerror: {error}\n", file=sys.stderr)
        return error.exit_code


def report(
    table: Table,
    runs,
    seeds,
    out_dir: Path,
    command: str,
    figures: bool,
    wandb_mode: str,
    wandb_dir: Path,
    mix: bool = False,
) -> Aggregate:
    """Aggregate (refusing mixed runs unless `mix`), say which runs were used, write the table files
    and figures, log them to W&B, and print the Markdown."""
    if not mix:
        check_not_mixed([run for run in runs if run.name in table.presets and run.seed in seeds])
    result = aggregate(table, runs, seeds)
    print(describe(result.runs))
    paths = render.write(result, out_dir, command)
    drawn = table.figures(result.runs, out_dir) if figures and table.figures and result.runs else []
    project = next((r.setting("logger.project") for r in result.runs if r.setting("logger.project")), "conml")
    log_figures(drawn, project, table.name, wandb_mode, wandb_dir, paths["md"].read_text())
    print(paths["md"].read_text())
    missing = sum(1 for e in result.entries if e.mean is None and not e.undefined_seeds)
    print(
        f"Written: {', '.join(str(p) for p in [*paths.values(), *drawn])}"
        + (f"  ({missing} of {len(result.entries)} cells missing)" if missing else "")
    )
    return result


def _run(table: Table, seeds: tuple[int, ...], args, command: str) -> int:
    presets, absent = available(table)
    if absent:
        print(f"No preset yet for {', '.join(absent)}: those cells will show as missing.", file=sys.stderr)
    if not presets:
        raise ConfigError(f"None of the presets of {table.name} exist in configs/experiment ({', '.join(absent)}).")
    try:
        parameters = sweep_parameters(table, presets, seeds, args.smoke, args.overrides)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    sweep_dir = Path(parameters.pop("hydra.sweep.dir", None) or new_sweep_dir(table, parameters, args.smoke))
    status = multirun(parameters, sweep_dir)
    if status != 0:
        print(f"The multirun exited with status {status}; the table shows the runs that finished.", file=sys.stderr)
    out_dir = DOCS_TABLES if args.docs else args.out or sweep_dir
    runs = collect_runs([sweep_dir]) if sweep_dir.exists() else []
    wandb_mode = parameters.get("logger.mode", "offline")
    report(table, runs, seeds, out_dir, command, not args.no_figures, wandb_mode, sweep_dir)
    return status


def _list() -> int:
    for name, table in TABLES.items():
        presets, absent = available(table)
        print(
            f"{name}: {table.title}\n  seeds {list(table.seeds)}; {len(presets)} presets"
            + (f"; no preset yet for {', '.join(absent)}" if absent else "")
        )
    return 0


def _table(name: str) -> Table:
    if name not in TABLES:
        raise ConfigError(f"There is no table '{name}'. The tables are: {', '.join(TABLES)}.")
    return TABLES[name]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python scripts/table.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the tables and their presets")
    for name, text in (
        ("run", "multirun the table's presets x seeds, then aggregate"),
        ("aggregate", "aggregate existing runs"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("table", help=f"one of: {', '.join(TABLES)}")
        if name == "run":
            action.add_argument(
                "overrides",
                nargs="*",
                help="Hydra overrides for every job, e.g. trainer.steps=2000 hydra/launcher=slurm",
            )
            action.add_argument(
                "--smoke",
                action="store_true",
                help="tiny data and a few steps: checks the presets and the aggregation end to end",
            )
        else:
            action.add_argument(
                "runs", nargs="+", help="folders to scan for results.json (a sweep folder, or outputs/)"
            )
            action.add_argument(
                "--wandb",
                metavar="ENTITY/PROJECT",
                help="also read the finished runs of the table's W&B groups (online)",
            )
            action.add_argument(
                "--wandb-mode",
                default="offline",
                choices=["online", "offline", "disabled"],
                help="where the figures are logged",
            )
            action.add_argument(
                "--mix",
                action="store_true",
                help="aggregate smoke runs with real ones, or runs of one preset at different step budgets",
            )
        action.add_argument("--seeds", help="comma-separated seeds the table expects (default: the table's)")
        where = action.add_mutually_exclusive_group()
        default = "the sweep folder" if name == "run" else "the first RUNS_DIR"
        where.add_argument("--out", type=Path, help=f"folder for the table files and figures (default: {default})")
        where.add_argument(
            "--docs", action="store_true", help=f"write them to {DOCS_TABLES}/, replacing the committed table"
        )
        action.add_argument("--no-figures", action="store_true", help="skip the figures")
    return parser
