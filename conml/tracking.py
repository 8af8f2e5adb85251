"""Run tracking: a local metrics.jsonl always, and a Weights & Biases run unless disabled."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from conml.config import LoggerConfig, WandbMode
from conml.preemption import Preempted


class Tracker:
    """Logs scalars by step to `metrics.jsonl` and to W&B; `finish()` must run, hence `with`.

    An inactive tracker (processes other than the main one) records nothing.
    """

    def __init__(
        self,
        run_dir: Path,
        settings: LoggerConfig,
        config: dict,
        group: str,
        run_id: str | None = None,
        active: bool = True,
    ):
        self.metrics_path = run_dir / "metrics.jsonl"
        self.run = None
        self.active = active
        mode = WandbMode(settings.mode)
        if active and mode != WandbMode.disabled:
            options = dict(
                project=settings.project,
                entity=settings.entity,
                group=settings.group or group,
                tags=list(settings.tags),
                job_type=settings.job_type,
                name=settings.name,
                config=config,
                dir=str(run_dir),
                id=run_id,
                resume="allow" if run_id else None,
            )
            self.run = _start_wandb(options, mode, run_dir)

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.id

    def log(self, metrics: dict[str, float], step: int) -> None:
        if not self.active:
            return
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps({"step": step, **{k: _plain(v) for k, v in metrics.items()}}) + "\n")
        if self.run is not None:
            self.run.log(metrics, step=step)

    def summarize(self, values: dict[str, float]) -> None:
        if self.run is not None:
            self.run.summary.update(values)

    def forget_after(self, step: int) -> None:
        """Drop local lines logged after `step`: a resumed run logs those steps again."""
        if not self.active or not self.metrics_path.exists():
            return
        kept = [
            line for line in self.metrics_path.read_text().splitlines() if line and json.loads(line)["step"] <= step
        ]
        self.metrics_path.write_text("".join(line + "\n" for line in kept))

    def finish(self, failed: bool = False) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, error_type, error, trace) -> None:
        if isinstance(error, Preempted) and self.run is not None:
            self.run.mark_preempting()
        self.finish(failed=error_type is not None)


def _plain(value: float) -> float | None:
    """JSON has no NaN/inf; write them as null so the file stays valid."""
    value = float(value)
    return value if math.isfinite(value) else None


def _start_wandb(options: dict, mode: WandbMode, run_dir: Path):
    """Start the W&B run; if online logging fails (not logged in, no network), log offline and say so."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        return wandb.init(**options, mode=mode.value, settings=wandb.Settings(console="off"))
    except Exception as error:  # noqa: BLE001 - any failure to reach W&B must not stop training
        if mode != WandbMode.online:
            raise
        print(
            f"warning: W&B online logging is unavailable ({type(error).__name__}: {str(error).strip().splitlines()[0]}). "
            f"Logging offline to {run_dir / 'wandb'} instead; upload it later with "
            f"`wandb sync {run_dir / 'wandb'}/offline-run-*` once `wandb login` works.",
            file=sys.stderr,
        )
        return wandb.init(**options, mode="offline", settings=wandb.Settings(console="off"))
