"""A multirun's jobs: names that show the values the sweep varies, and one table of every job's
outcome when the multirun ends.

A job's folder is `<number>_<experiment name>_<swept values>`, e.g.
`3_sinusoid-maml-10shot-conml_conml.lam=0.1,seed=2`; its W&B run is named the same without the
number, which repeats in every sweep, and with the seed even where it is not swept
(`sinusoid-maml-10shot-conml_conml.lam=0.1,seed=2`); a single run's W&B run is `<name>_seed=<seed>`.
Numbers are rounded to DIGITS significant digits (an Optuna trial's 0.012345678901234 is 0.01235).
Which settings vary is known only to the multirun's own process (its overrides `seed=0,1,2`
and `hydra.sweeper.params`); `MultirunJobs`, a Hydra callback, writes them into the sweep folder
(`swept.json`) before any job starts, and each job reads them from there (`swept_in`), also when it
runs in another process (submitit): the folder is the one place every job already shares.

The closing table lists each job's swept values, its test results (mean ± 95% CI) or why it has
none, and its run folder, then each setting's mean ± 95% CI over seeds; both are also written to
`<sweep folder>/summary.md` and `summary.json` (conml/sweep_summary.py). The multirun exits with
status 1 if a job failed. Jobs run in this process report their outcome directly; jobs run elsewhere
are read from their folders.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from conml import sweep_summary

SWEPT_FILE = "swept.json"
# Longest swept-values part of a folder name (a file name may have 255 bytes).
LONGEST = 150
# Significant digits of a number in a job's name.
DIGITS = 4


@dataclass
class Job:
    number: int
    values: dict[str, str]
    folder: Path | None
    test: dict | None = None  # '<metric>@<k>shot' -> {mean, ci95, count}
    error: str | None = None


@dataclass
class JobOutcome:
    """What `conml.train`'s main returns: the run's optimize_metric as `value`, with its test results,
    or the error of a job that failed. `float(outcome)` is what a sweeper such as Optuna optimises; a
    failed job has no value, and its TypeError makes Optuna record a failed trial and go on."""

    value: float | None = None
    test: dict | None = None
    error: str | None = None

    def __str__(self) -> str:
        return f"{self.value}" if self.value is not None else f"no value, the job failed: {self.error}"

    def __float__(self) -> float:
        if self.value is None:
            raise TypeError(f"the job has no value: {self.error or 'it ran on a process other than the main one'}")
        return self.value


class MultirunJobs(Callback):
    def __init__(self):
        self.jobs: dict[int, Job] = {}
        self.swept: list[str] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.jobs, self.swept = {}, swept_keys(config)
        sweep = Path(config.hydra.sweep.dir)
        sweep.mkdir(parents=True, exist_ok=True)
        (sweep / SWEPT_FILE).write_text(json.dumps(self.swept) + "\n")

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        folder = Path(config.hydra.runtime.output_dir)
        job = Job(
            int(config.hydra.job.num),
            _values(config.hydra.overrides.task, self.swept),
            folder if folder.is_dir() else None,
        )
        # conml.train's main returns a JobOutcome: the results, or the error of a job that failed
        outcome = (
            job_return.return_value
            if job_return.status == JobStatus.COMPLETED
            else JobOutcome(error="the job raised an error (printed above)")
        )
        job.test, job.error = outcome.test, outcome.error
        self.jobs[job.number] = job

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        jobs = sorted(self.jobs.values(), key=lambda j: j.number) or jobs_in_folder(sweep, self.swept)
        print(summary(jobs, self.swept, sweep), flush=True)
        try:
            written = sweep_summary.write(sweep, jobs, self.swept, sweep)
            print(f"Summary written to {written[0]} and {written[1]}.", flush=True)
        except OSError as error:
            print(f"warning: the summary could not be written into {sweep} ({error}).", file=sys.stderr)
        if any(job.test is None for job in jobs):
            sys.exit(1)


def swept_in(sweep: str | Path) -> list[str]:
    """The settings the multirun whose folder is `sweep` varies, as its `MultirunJobs` wrote them (none for a
    folder without the file: a single run, or a multirun started before the file existed)."""
    path = Path(sweep) / SWEPT_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def swept_keys(config: DictConfig) -> list[str]:
    """The settings a multirun varies, in the order they were given."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    overrides = [*(f"{key}={value}" for key, value in params.items()), *config.hydra.overrides.task]
    parsed = OverridesParser.create().parse_overrides(overrides)
    return list(dict.fromkeys(o.key_or_group for o in parsed if o.is_sweep_override()))


def _values(overrides: Iterable[str], swept: Iterable[str]) -> dict[str, str]:
    """The swept keys a job's overrides set, with their values."""
    pairs = (o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)
    wanted = set(swept)
    return {key: value for key, value in pairs if key in wanted}


def job_folder(number: Any, name: str, overrides: Iterable[str], sweep: str) -> str:
    """`<number>_<name>_<swept values>`, the folder name of a multirun job in the multirun folder `sweep`
    (a resolver for hydra.sweep.subdir)."""
    label = _label(_swept_values(overrides, swept_in(sweep)))
    return f"{number}_{name}" + (f"_{label[:LONGEST]}" if label else "")


def run_name(name: str, seed: int, overrides: Iterable[str] = (), swept: Iterable[str] = ()) -> str:
    """The W&B name of a run: `<name>_<swept values>` for a multirun job (its `overrides`, of which `swept` are the
    multirun's swept keys), then its seed if the multirun does not vary it; `<name>_seed=<seed>` for a single run.
    No job number: it repeats across sweeps."""
    values = _swept_values(overrides, swept)
    values.setdefault("seed", str(seed))
    return f"{name}_{_label(values)}"


def _swept_values(overrides: Iterable[str], swept: Iterable[str]) -> dict[str, str]:
    """The swept values of a job's overrides, numbers rounded. The experiment is left out: the name already says it."""
    values = _values(overrides, swept)
    return {key: _rounded(value) for key, value in values.items() if key != "experiment"}


def _label(values: dict[str, str]) -> str:
    """`key=value,...`; a value never adds folder levels."""
    return ",".join(f"{key}={value}" for key, value in values.items()).replace(os.sep, "-")


def _rounded(value: str) -> str:
    """A number with more than DIGITS significant digits, rounded to DIGITS; anything else (integers, words,
    lists) as it is."""
    if re.fullmatch(r"[+-]?\d+", value):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    short = f"{number:.{DIGITS}g}"
    return value if float(short) == number or not math.isfinite(number) else short


def jobs_in_folder(sweep: Path, swept: list[str]) -> list[Job]:
    """The jobs of a sweep whose jobs ran in other processes, read from their numbered folders."""
    jobs = []
    for folder in sorted(sweep.iterdir() if sweep.is_dir() else [], key=lambda p: p.name):
        number = folder.name.split("_", 1)[0]
        if not (folder.is_dir() and number.isdigit()):
            continue
        overrides = folder / ".hydra" / "overrides.yaml"
        values = _values(yaml.safe_load(overrides.read_text()) or [], swept) if overrides.is_file() else {}
        results = folder / "results.json"
        test = json.loads(results.read_text()).get("test") if results.is_file() else None
        jobs.append(
            Job(int(number), values, folder, test, None if test else "no results.json (see the job's train.log)")
        )
    return sorted(jobs, key=lambda j: j.number)


def multirun_in_folder(sweep: Path) -> tuple[list[Job], list[str]]:
    """The jobs of the multirun whose folder is `sweep` and the keys it swept, read from the multirun.yaml that
    Hydra writes there when the multirun starts (which also tells a multirun folder from any other)."""
    swept = swept_keys(OmegaConf.load(sweep / "multirun.yaml"))
    return jobs_in_folder(sweep, swept), swept


def summary(jobs: list[Job], swept: list[str], sweep: Path) -> str:
    """The closing tables: one row per job, then, where seeds repeat a setting, one row per setting."""
    found = sweep_summary.settings(jobs, swept)
    lines = ["", sweep_summary.headline(jobs, sweep)]
    lines += sweep_summary.aligned(*sweep_summary.job_rows(jobs, swept, lambda job: _shown(job.folder)))
    if any(len(setting.jobs) > 1 for setting in found):
        lines += ["Per setting, mean ± 95% CI over seeds:"]
        lines += sweep_summary.aligned(*sweep_summary.setting_rows(found, swept))
    return "\n".join(lines)


def _shown(folder: Path | None) -> str:
    if folder is None:
        return "-"
    try:
        return str(folder.relative_to(Path.cwd()))
    except ValueError:
        return str(folder)
