"""What a multirun found: one table of its jobs, and one of its settings with mean ± 95% CI over seeds.

A setting is one combination of the swept values other than the seed (`conml.lam=0.1` of a sweep over
`conml.lam` and `seed`); its test results are the mean over the seeds that finished, with the 95% CI of
Student's t, as the paper tables report them (a single finished seed has no interval). The multirun prints
both tables when it ends (conml/multirun_jobs.py) and writes them to `<sweep folder>/summary.md` and
`summary.json`, as `scripts/table.py aggregate sweep` does for any multirun folder afterwards.

Each file is written whole under a temporary name and then linked into place, so a reader never sees
half a file, and a link never replaces a file: where another multirun (one that reused the folder)
left a summary with other contents, this one becomes `summary-2.md` and `summary-2.json`, and so on.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conml.metrics import mean_t_ci

if TYPE_CHECKING:
    from conml.multirun_jobs import Job

SEED = "seed"
# Test results shown per job in the jobs table; the rest are in its results.json.
SHOWN = 2


@dataclass
class Setting:
    """The jobs of one combination of the swept values other than the seed."""

    values: dict[str, str]
    jobs: list[Job]

    @property
    def finished(self) -> list[Job]:
        return [job for job in self.jobs if job.test is not None]

    def test(self) -> dict[str, dict]:
        """'<metric>@<k>shot' -> {mean, ci95 (None from fewer than two seeds), seeds} over the finished jobs."""
        results = {}
        for key in dict.fromkeys(key for job in self.finished for key in job.test):
            values = [job.test[key]["mean"] for job in self.finished if key in job.test]
            summary = mean_t_ci(values)
            results[key] = {
                "mean": summary.mean,
                "ci95": summary.ci95 if len(values) > 1 else None,
                "seeds": len(values),
            }
        return results


def settings(jobs: list[Job], swept: list[str]) -> list[Setting]:
    """The jobs grouped by their swept values other than the seed, in the order the settings first appear."""
    keys = [key for key in swept if key != SEED]
    grouped: dict[tuple[str, ...], Setting] = {}
    for job in jobs:
        values = {key: job.values.get(key, "") for key in keys}
        grouped.setdefault(tuple(values.values()), Setting(values, [])).jobs.append(job)
    return list(grouped.values())


def job_rows(jobs: list[Job], swept: list[str], folder) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the jobs table: number, swept values, test results or error, run folder (`folder(job)`)."""
    header = ["job", *swept, "test (mean ± 95% CI)", "run folder"]
    rows = [[str(job.number), *(job.values.get(key, "") for key in swept), _outcome(job), folder(job)] for job in jobs]
    return header, rows


def setting_rows(found: list[Setting], swept: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the settings table: swept values but the seed, seeds finished, one column per test result."""
    tests = [setting.test() for setting in found]
    metrics = list(dict.fromkeys(key for test in tests for key in test))
    header = [*(key for key in swept if key != SEED), "seeds finished", *(f"{m} (mean ± 95% CI)" for m in metrics)]
    rows = [
        [
            *setting.values.values(),
            f"{len(setting.finished)}/{len(setting.jobs)}",
            *(_mean(test.get(m)) for m in metrics),
        ]
        for setting, test in zip(found, tests)
    ]
    return header, rows


def aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    """A table as lines of columns padded to equal width (for the console)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]


def headline(jobs: list[Job], sweep: Path) -> str:
    failed = sum(job.test is None for job in jobs)
    return f"Multirun {sweep}: {len(jobs)} job(s), {len(jobs) - failed} finished, {failed} failed or refused."


def markdown(jobs: list[Job], swept: list[str], sweep: Path) -> str:
    """summary.md: the headline, the settings table, the jobs table (run folders relative to the sweep folder)."""
    lines = [f"# Multirun {sweep.name}", "", headline(jobs, Path(sweep.name)), ""]
    lines += [
        "Per setting (every combination of the swept values but the seed): mean ± 95% CI (Student t) over the "
        "seeds that finished. Per job: its test result ± 95% CI over test tasks.",
        "",
        "## Per setting",
        "",
        *_markdown_table(*setting_rows(settings(jobs, swept), swept)),
        "",
        "## Per job",
        "",
        *_markdown_table(*job_rows(jobs, swept, lambda job: job.folder.name if job.folder else "-")),
    ]
    return "\n".join(lines) + "\n"


def as_json(jobs: list[Job], swept: list[str], sweep: Path) -> str:
    """summary.json: the swept keys, each setting's results over seeds, each job's results or error."""
    payload = {
        "sweep": sweep.name,
        "swept": swept,
        "settings": [
            {
                "values": setting.values,
                "jobs": len(setting.jobs),
                "seeds_finished": [job.values.get(SEED) for job in setting.finished],
                "test": setting.test(),
            }
            for setting in settings(jobs, swept)
        ],
        "jobs": [
            {
                "number": job.number,
                "values": job.values,
                "folder": job.folder.name if job.folder else None,
                "test": job.test,
                "error": job.error,
            }
            for job in jobs
        ],
    }
    return json.dumps(_finite(payload), indent=2, allow_nan=False) + "\n"


def write(folder: Path, jobs: list[Job], swept: list[str], sweep: Path) -> tuple[Path, Path]:
    """summary.md and summary.json in `folder`, or the first summary-<n> pair that is free or already holds
    exactly these contents (a rerun over the same jobs then writes nothing); never over another's files."""
    texts = (markdown(jobs, swept, sweep), as_json(jobs, swept, sweep))
    number = 0
    while True:
        number += 1
        stem = "summary" if number == 1 else f"summary-{number}"
        targets = (folder / f"{stem}.md", folder / f"{stem}.json")
        if all(t.is_file() and t.read_text() == text for t, text in zip(targets, texts)):
            return targets
        if any(t.exists() for t in targets):
            continue
        placed = []
        try:
            for target, text in zip(targets, texts):
                _place(target, text)
                placed.append(target)
            return targets
        except FileExistsError:  # another process took this name between the check and the link
            for target in placed:
                target.unlink()


def _place(target: Path, text: str) -> None:
    """Write `text` to a temporary file beside `target`, then link it to `target` (FileExistsError if taken)."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.link(temporary, target)
    finally:
        os.unlink(temporary)


def _outcome(job: Job) -> str:
    if job.test is None:
        return f"failed: {(job.error or '').splitlines()[0][:100]}"
    shown = [f"{key} {value['mean']:.4g} ± {value['ci95']:.2g}" for key, value in list(job.test.items())[:SHOWN]]
    more = len(job.test) - SHOWN
    return "; ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def _mean(result: dict | None) -> str:
    if result is None:
        return "-"
    if result["ci95"] is None:
        return f"{result['mean']:.4g}"
    return f"{result['mean']:.4g} ± {result['ci95']:.2g}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _finite(value):
    """JSON has no NaN: a non-finite number (an undefined result) is written as null."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
