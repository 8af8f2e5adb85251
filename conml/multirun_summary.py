"""After a multirun, print every job's meta-test results in the terminal that started it.

Launchers that run jobs in other processes (`hydra/launcher=local`, through submitit) send each
job's own output to a log file, so without this the multirun ends silently. `PrintJobResults`
is a Hydra callback (set in configs/hydra/launcher/local.yaml) that reads each job folder's
`results.json` and prints one line per job, naming the overrides that differ between jobs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class PrintJobResults(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        print(summarize(Path(config.hydra.sweep.dir)), flush=True)


def summarize(sweep: Path) -> str:
    """One line per job folder of `sweep`: its varying overrides and test results (mean ± 95% CI), or why there are none."""
    jobs = sorted((p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_job_order) if sweep.is_dir() else []
    overrides = {job: _overrides(job) for job in jobs}
    common = set.intersection(*(set(o) for o in overrides.values())) if jobs else set()
    lines = [f"\nMultirun results (mean ± 95% CI), {len(jobs)} job(s) in {sweep}:"]
    for job in jobs:
        varying = " ".join(o for o in overrides[job] if o not in common)
        label = f"{job.name}" + (f" ({varying})" if varying else "")
        results = job / "results.json"
        if not results.is_file():
            lines.append(f"  {label}: no results.json: the job failed or did not finish; its output is in {sweep / '.submitit'}")
            continue
        test = json.loads(results.read_text()).get("test", {})
        lines.append(f"  {label}: " + ", ".join(f"{key} {value['mean']:.4f} ± {value['ci95']:.4f}" for key, value in test.items()))
    return "\n".join(lines)


def _job_order(job: Path) -> tuple[int, str]:
    number = job.name.split("_", 1)[0]
    return (int(number) if number.isdigit() else -1, job.name)


def _overrides(job: Path) -> list[str]:
    path = job / ".hydra" / "overrides.yaml"
    return [str(o) for o in yaml.safe_load(path.read_text()) or []] if path.is_file() else []
