"""Re-run a paper table and set it beside the paper's numbers.

    python scripts/table.py run TABLE [--seeds 0,1,2] [--smoke] [--out DIR | --docs [--force]] [OVERRIDE ...]
    python scripts/table.py aggregate TABLE RUNS_DIR [RUNS_DIR ...] [--seeds ...] [--wandb ENTITY/PROJECT] [--out DIR | --docs [--force]] [--mix]
    python scripts/table.py aggregate sweep MULTIRUN_DIR [--out DIR]
    python scripts/table.py export TABLE RUNS_DIR OUT_DIR
    python scripts/table.py list

`run` launches a Hydra multirun over the table's cells and seeds, one per grid of the table (OVERRIDEs
such as trainer.steps=2000 or hydra/launcher=slurm go to every job), then aggregates that sweep.
`aggregate` reads the results.json files under RUNS_DIR (a sweep folder, or outputs/) and, with
--wandb, the finished runs of the table's W&B groups. Both say which runs they used and write
<table>.md, .tex, .json and the table's figures (PNG) into the sweep folder (`run`) or the first
RUNS_DIR (`aggregate`), into --out DIR, or, only with --docs, over the committed docs/tables/. They
log the table (a wandb.Table) and its figures to one W&B run of job type 'table' beside the table's
training runs (offline unless --wandb-mode or logger.mode says otherwise), whose files go into that
folder, or with --docs into the sweep folder (`run`) or outputs/tables/<table>/ (`aggregate`). Smoke runs beside real ones, or
runs of one preset at different step budgets, or runs whose settings outside the table's swept axes differ
from their cell's protocol (a search trial, another sweep's run), are refused unless --mix is given. Finding no run of the
table is an error naming the folders searched. --docs refuses smoke runs, runs on synthetic data and a
table without one filled cell, and any number of the committed <table>.json that would be lost or
changed (cells it shows as missing may be filled); --force writes over such a committed table anyway.
`export` copies, for every finished run of the table under RUNS_DIR (the newest of a preset and
seed), its results.json and its cached analyses (computed first where missing) into
OUT_DIR/<run folder name>/: a few KB per run, which `aggregate` rebuilds the table and figures from
once the checkpoints are gone; results.json's absolute data and output folders are written as <data_dir> and
<output_dir>, so nothing of the machine is committed. It never overwrites a different exported result.
`aggregate sweep` needs no table: it groups the jobs of any multirun folder by the values the sweep
varied other than the seed, prints each setting's test results as mean ± 95% CI over seeds beside the
table of jobs, and writes them as summary.md and summary.json into the multirun folder or --out DIR
(conml/sweep_summary.py: the files the multirun itself wrote when it ended are never overwritten).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

from conml import multirun_jobs, sweep_summary
from conml.errors import ConfigError, DataError, UserError
from conml.tables import render
from conml.tables.aggregate import Aggregate, aggregate
from conml.tables.catalog import TABLES
from conml.tables.committed import check_docs
from conml.tables.multirun import multirun, new_sweep_dir, output_root, sweep_parameters
from conml.tables.portable import portable_results
from conml.tables.provenance import check_not_mixed, check_protocol, describe
from conml.tables.runs import Run, collect_runs, wandb_runs
from conml.tables.spec import Table
from conml.tables.wandb_table import log_table

DOCS_TABLES = Path("docs/tables")
# `aggregate sweep DIR` summarises any multirun folder, without a table definition.
SWEEP = "sweep"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and (args.action != "run" or any(e.startswith("-") for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "force", False) and not args.docs:
        parser.error("--force only applies with --docs (it replaces numbers of the committed table)")
    if args.action == "run":
        args.overrides += extra  # overrides may come before or after the options
    args.outputs = Path(os.environ.get("CONML_OUTPUTS") or "outputs")  # as configs/train.yaml's paths.output_dir
    command = "python scripts/table.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        if args.action == "list":
            return _list()
        if args.action == "aggregate" and args.table == SWEEP:
            return aggregate_sweep(args)
        table = _table(args.table)
        if args.action == "export":
            return export(table, args.runs_dir, args.out_dir)
        seeds = table.seeds if args.seeds is None else _seeds(args.seeds)
        if args.action == "run":
            return _run(table, seeds, args, command)
        roots = [Path(p) for p in args.runs]
        runs = collect_runs(roots) + (wandb_runs(args.wandb, table.presets) if args.wandb else [])
        out_dir = DOCS_TABLES if args.docs else args.out or roots[0]
        searched = [str(root) for root in roots] + ([f"the W&B project {args.wandb}"] if args.wandb else [])
        report(
            table,
            runs,
            seeds,
            out_dir,
            command,
            not args.no_figures,
            args.wandb_mode,
            output_root({}, args.outputs) / "tables" / table.name if args.docs else out_dir,
            searched,
            mix=args.mix,
            docs=args.docs,
            force=args.force,
        )
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
    searched: list[str],
    mix: bool = False,
    docs: bool = False,
    force: bool = False,
    overrides: tuple[str, ...] = (),
) -> Aggregate:
    """Aggregate (refusing mixed runs unless `mix`, no runs at all, and with `docs` what `check_docs` refuses), say
    which runs were used, write the table files and figures, log them to W&B with their files under `wandb_dir`
    (beside it when that is a run folder: a run's own W&B folder holds only its own runs), and print the Markdown."""
    if not mix:
        found = [run for run in runs if run.name in table.presets and run.seed in seeds]
        check_not_mixed(found)
        check_protocol(table, found, overrides)
    result = aggregate(table, runs, seeds)
    if not result.runs:
        where = ", ".join(searched)
        raise DataError(
            f"There is no finished run of {table.name} with seeds {list(seeds)} in {where} ({len(runs)} finished run(s) "
            f"of any table found there), so there is no table to write: nothing was written. A run is finished once its "
            "folder holds the results.json that `python -m conml.train` writes after meta-testing; pass the folder that "
            f"holds the runs of {table.name}'s presets (such as {table.presets[0]}), or the seeds they have (--seeds)."
        )
    if docs:
        check_docs(result, out_dir, force)
    print(describe(result.runs))
    paths = render.write(result, out_dir, command)
    drawn = table.figures(result.runs, out_dir) if figures and table.figures and result.runs else []
    logged = log_table(result, drawn, wandb_mode, wandb_dir.parent if _is_run(wandb_dir) else wandb_dir)
    print(paths["md"].read_text())
    missing = sum(1 for e in result.entries if e.mean is None and not e.undefined_seeds)
    print(
        f"Written: {', '.join(str(p) for p in [*paths.values(), *drawn])}"
        + (f"  ({missing} of {len(result.entries)} cells missing)" if missing else "")
        + (f"\nW&B run of the table: {logged}" if logged else "")
    )
    return result


def _is_run(folder: Path) -> bool:
    """Whether `folder` is a run's own folder (it holds the run's results.json)."""
    return (folder / "results.json").is_file()


def aggregate_sweep(args) -> int:
    """`aggregate sweep MULTIRUN_DIR [--out DIR]`: the multirun's jobs and settings (mean ± 95% CI over seeds),
    printed and written as summary.md and summary.json into --out DIR or the multirun folder."""
    used = [option for option, given in _table_options(args).items() if given]
    if used or len(args.runs) != 1:
        raise ConfigError(
            "`scripts/table.py aggregate sweep` takes one multirun folder and, optionally, --out DIR"
            + (f"; {', '.join(used)} belong to the paper tables" if used else f", not {len(args.runs)} folders")
            + ": it groups that folder's jobs by the values the sweep varied, whatever they are. Summarise several "
            "multiruns one by one, or aggregate a paper table with `scripts/table.py aggregate TABLE RUNS_DIR ...`."
        )
    sweep = Path(args.runs[0])
    if not sweep.is_dir():
        raise DataError(
            f"{sweep} is not a folder: pass the folder a multirun printed when it ended (outputs/multirun/<date>_<time>, "
            "or the one hydra.sweep.dir named). Nothing was written."
        )
    if not (sweep / "multirun.yaml").is_file():
        inside = sorted(str(p.parent.relative_to(sweep)) for p in sweep.glob("*/multirun.yaml"))
        raise DataError(
            f"{sweep} is not a multirun folder: it holds no multirun.yaml, which Hydra writes into the folder of every "
            "multirun (`python -m conml.train -m ...`) when it starts, so the swept settings cannot be known. "
            + (
                f"It holds the multiruns {', '.join(inside)}: summarise each of those. "
                if inside
                else "Pass the folder the multirun printed (outputs/multirun/<date>_<time>, or the one hydra.sweep.dir "
                "named); runs of a paper table in any folder are aggregated with `scripts/table.py aggregate TABLE DIR`. "
            )
            + "Nothing was written."
        )
    jobs, swept = multirun_jobs.multirun_in_folder(sweep)
    if not any(job.test is not None for job in jobs):
        raise DataError(
            f"The multirun in {sweep} has {len(jobs)} job folder(s) and none has finished: a job is finished once its "
            "folder holds the results.json that `python -m conml.train` writes after meta-testing, so there is "
            "nothing to summarise and nothing was written. Wait for the jobs to end, or see why they stopped in "
            "their train.log (and <multirun folder>/.submitit/ for jobs run by hydra/launcher=local or slurm)."
        )
    out_dir = args.out or sweep
    out_dir.mkdir(parents=True, exist_ok=True)
    print(multirun_jobs.summary(jobs, swept, sweep))
    written = sweep_summary.write(out_dir, jobs, swept, sweep)
    print(f"Written: {written[0]}, {written[1]}")
    return 0


def _table_options(args) -> dict[str, bool]:
    """The options of `aggregate` that only a paper table uses, and whether each was given."""
    return {
        "--seeds": args.seeds is not None,
        "--wandb": args.wandb is not None,
        "--mix": args.mix,
        "--docs": args.docs,
        "--force": args.force,
        "--no-figures": args.no_figures,
    }


def export(table: Table, runs_dir: Path, out_dir: Path) -> int:
    """Copy the finished runs of `table` under `runs_dir` into out_dir/<run folder name>/: results.json and
    analysis/*.json, every analysis the table's cells and figures read (computed from the checkpoints where
    the run folder lacks it), so that the copies rebuild the table without the checkpoints. The run folders
    are only read; a different result already in out_dir is never overwritten."""
    runs = [run for run in collect_runs([runs_dir]) if run.name in table.presets]
    if not runs:
        raise DataError(
            f"There is no finished run of {table.name} under {runs_dir}: a run is finished once its folder holds the "
            "results.json that `python -m conml.train` writes after meta-testing. Wait for the runs to finish, or pass "
            f"the folder that holds them (runs of {table.name}'s presets, such as {table.presets[0]})."
        )
    result = aggregate(table, runs, tuple(sorted({run.seed for run in runs})))
    if table.figures:
        with TemporaryDirectory() as scratch:
            table.figures(result.runs, Path(scratch))
    files = {run.run_dir: _exported_files(run) for run in result.runs}
    _check_no_clash(files, out_dir)
    for source, contents in files.items():
        target = out_dir / source.name
        written = [name for name in contents if not (target / name).exists()]
        for name in written:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(contents[name])
        print(f"{source} -> {target}: " + (f"{len(written)} file(s) written" if written else "unchanged"))
    for run in runs:
        if not any(run is used for used in result.runs):
            print(f"Left out {run.run_dir}: a newer run of {run.name} with seed {run.seed} was exported instead.")
    print(f"Exported {len(result.runs)} run(s) of {table.name} to {out_dir}; commit them with `git add {out_dir}`.")
    return 0


def _exported_files(run: Run) -> dict[str, bytes]:
    """What an export writes for a run, by path relative to its folder: results.json without the machine's folders
    (conml/tables/portable.py), and each analysis the table read."""
    analyses = {f"analysis/{name}.json": json.dumps(found, indent=2).encode() for name, found in run.analyses.items()}
    return {"results.json": portable_results((run.run_dir / "results.json").read_text()).encode(), **analyses}


def _check_no_clash(files: dict[Path, dict[str, bytes]], out_dir: Path) -> None:
    """Refuse two runs of one folder name, and any file that out_dir already holds with other contents."""
    by_name: dict[str, Path] = {}
    for source in files:
        if source.name in by_name:
            raise DataError(
                f"The runs {by_name[source.name]} and {source} have the same folder name, and an exported run is "
                f"named by its folder ({out_dir / source.name}). Export them from separate folders into separate "
                "places, or train one of them again into a folder of another name (hydra.run.dir=...)."
            )
        by_name[source.name] = source
    differing = [
        (source, name)
        for source, contents in files.items()
        for name, content in contents.items()
        if (out_dir / source.name / name).exists() and (out_dir / source.name / name).read_bytes() != content
    ]
    if differing:
        source, name = differing[0]
        more = f" (and {len(differing) - 1} more file(s))" if len(differing) > 1 else ""
        raise DataError(
            f"{out_dir / source.name / name} already holds a different result than {source / name}{more}, and an "
            "export never overwrites an exported result: nothing was written. If the run was trained or analysed "
            f"again on purpose, remove {out_dir / source.name} (git rm -r) and export again; if it is another run, "
            "train it into a folder of another name (hydra.run.dir=...) so that both are kept."
        )


def _run(table: Table, seeds: tuple[int, ...], args, command: str) -> int:
    if args.smoke and args.docs:
        raise ConfigError(
            f"--smoke with --docs would write two-step numbers over the committed {DOCS_TABLES}/{table.name}.*: "
            "refused before anything ran. Leave out --docs (the smoke table goes into the sweep folder) or --out DIR."
        )
    try:
        grids = [
            sweep_parameters(table, seeds, args.smoke, args.overrides, sweep) for sweep in range(len(table.sweeps))
        ]
    except ValueError as error:
        raise ConfigError(str(error)) from None
    sweep_dir = Path(grids[0].get("hydra.sweep.dir") or new_sweep_dir(table, grids[0], args.smoke, args.outputs))
    # A table of several grids runs each into its own folder under the sweep folder.
    parts = [sweep_dir] if len(grids) == 1 else [sweep_dir / f"grid{i + 1}" for i in range(len(grids))]
    statuses = [
        multirun({**{k: v for k, v in grid.items() if k != "hydra.sweep.dir"}, "provenance.table": table.name}, part)
        for grid, part in zip(grids, parts)
    ]
    status = next((s for s in statuses if s != 0), 0)
    if status != 0:
        print(f"The multirun exited with status {status}; the table shows the runs that finished.", file=sys.stderr)
    out_dir = DOCS_TABLES if args.docs else args.out or sweep_dir
    runs = collect_runs([sweep_dir]) if sweep_dir.exists() else []
    wandb_mode = grids[0].get("logger.mode", "offline")
    report(
        table,
        runs,
        seeds,
        out_dir,
        command,
        not args.no_figures,
        wandb_mode,
        sweep_dir if args.docs else out_dir,
        [str(sweep_dir)],
        docs=args.docs,
        force=args.force,
        overrides=tuple(args.overrides),
    )
    return status


def _list() -> int:
    for name, table in TABLES.items():
        print(
            f"{name}: {table.title}\n  seeds {list(table.seeds)}; "
            + f"{len(table.run_keys)} runs per seed, "
            + f"the cells of configs/table/{name}.yaml"
        )
    return 0


def _seeds(text: str) -> tuple[int, ...]:
    """--seeds 0,1,2 as integers."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--seeds {text}: seeds are integers separated by commas, e.g. --seeds 0,1,2 (leave --seeds out for the "
            "table's own seeds; `python scripts/table.py list` shows them)."
        ) from None


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
        action.add_argument(
            "table",
            help=f"one of: {', '.join(TABLES)}"
            + ("" if name == "run" else f"; or `{SWEEP}`: any multirun folder, grouped by its swept settings"),
        )
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
                help="aggregate smoke runs with real ones, runs of one preset at different step budgets, or runs "
                "whose settings differ from their cell's protocol",
            )
        action.add_argument("--seeds", help="comma-separated seeds the table expects (default: the table's)")
        where = action.add_mutually_exclusive_group()
        default = "the sweep folder" if name == "run" else "the first RUNS_DIR"
        where.add_argument("--out", type=Path, help=f"folder for the table files and figures (default: {default})")
        where.add_argument(
            "--docs",
            action="store_true",
            help=f"write them to {DOCS_TABLES}/: refused for smoke or synthetic runs, an empty table, or a number of "
            "the committed table that would be lost or changed (missing cells may be filled)",
        )
        action.add_argument(
            "--force", action="store_true", help="with --docs: replace the committed table even if numbers change"
        )
        action.add_argument("--no-figures", action="store_true", help="skip the figures")
    action = actions.add_parser(
        "export", help="copy finished runs' results.json and cached analyses (no checkpoints) to commit them"
    )
    action.add_argument("table", help=f"one of: {', '.join(TABLES)}")
    action.add_argument("runs_dir", type=Path, help="folder to scan for finished runs (results.json)")
    action.add_argument("out_dir", type=Path, help="where each run goes, as <out_dir>/<run folder name>/")
    return parser
