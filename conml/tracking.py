"""Run tracking: a local metrics.jsonl always, and a Weights & Biases run unless disabled."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from conml.config import LoggerConfig, WandbMode


class Tracker:
    """Logs scalars by step to `metrics.jsonl` and to W&B; `finish()` must run, hence `with`.

    An inactive tracker (processes other than the main one) records nothing.
    """

    def __init__(self, run_dir: Path, settings: LoggerConfig, config: dict, group: str, run_id: str | None = None, active: bool = True):
        self.metrics_path = run_dir / "metrics.jsonl"
        self.run = None
        self.active = active
        mode = WandbMode(settings.mode)
        if active and mode != WandbMode.disabled:
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            self.run = wandb.init(
                project=settings.project,
                entity=settings.entity,
                group=settings.group or group,
                tags=list(settings.tags),
                job_type=settings.job_type,
                name=settings.name,
                config=config,
                dir=str(run_dir),
                mode=mode.value,
                id=run_id,
                resume="allow" if run_id else None,
                settings=wandb.Settings(console="off"),
            )

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
        kept = [line for line in self.metrics_path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        self.metrics_path.write_text("".join(line + "\n" for line in kept))

    def finish(self, failed: bool = False) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, error_type, error, trace) -> None:
        self.finish(failed=error_type is not None)


def _plain(value: float) -> float | None:
    """JSON has no NaN/inf; write them as null so the file stays valid."""
    value = float(value)
    return value if math.isfinite(value) else None
