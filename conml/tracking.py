"""Run tracking: a local metrics.jsonl always, and a Weights & Biases run unless disabled.

The W&B run's summary holds the test metrics and the best validation score with its step
(`best/val/<metric>`, `best/step`), so runs can be sorted by what they optimised; its console is
captured (what train.log holds); `logger.log_artifacts=true` adds an artifact with the best
checkpoint, results.json and train.log.
"""

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
        job_type: str = "train",
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
                job_type=job_type,
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

    def define_best(self, metric: str, direction: str) -> None:
        """Summarise `metric` (a validation metric) by its best and last values; `direction` is
        'minimize' or 'maximize' (config.metric_direction)."""
        if self.run is not None:
            best = {"minimize": "min", "maximize": "max"}[direction]
            self.run.define_metric(metric, summary=f"{best},last")

    def record_best(self, metric: str, value: float, step: int) -> None:
        """A new best validation score (the one checkpoints/best.pt holds) and its step, in the summary at once,
        so an unfinished run is sorted by it too; a resumed run's later best replaces it."""
        self.summarize({f"best/{metric}": value, "best/step": step})

    def log_artifact(self, paths: list[Path]) -> None:
        """Upload `paths` (those that exist) as one artifact of type `model`, named after the run id."""
        if self.run is None:
            return
        import wandb

        artifact = wandb.Artifact(f"run-{self.run.id}-files", type="model", metadata={"name": self.run.name})
        for path in paths:
            if path.exists():
                artifact.add_file(str(path), name=path.name)
        self.run.log_artifact(artifact)

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


def prepare_console_capture(mode: WandbMode) -> None:
    """Call before RunLog copies the streams: W&B captures the console (`console="wrap"`) by patching the
    `write` of the sys.stdout and sys.stderr objects present when it is first imported, once per process.
    Imported here, it patches the real streams, which RunLog's copies write through, so every run of the
    process (each job of a multirun) is captured, and train.log, which RunLog writes, is still written once.
    Imported later, inside RunLog, it would patch the copies of the first run only."""
    if WandbMode(mode) != WandbMode.disabled:
        from wandb.sdk.lib import console_capture  # noqa: F401 - imported for its patching


def _start_wandb(options: dict, mode: WandbMode, run_dir: Path):
    """Start the W&B run; if online logging fails (not logged in, no network), log offline and say so.

    The console is captured by wrapping `write` (not by redirecting file descriptors), so a run whose
    stdout is a file or a pipe prints and detects its terminal as it would without W&B."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        return wandb.init(**options, mode=mode.value, settings=wandb.Settings(console="wrap"))
    except Exception as error:  # noqa: BLE001 - any failure to reach W&B must not stop training
        if mode != WandbMode.online:
            raise
        print(
            f"warning: W&B online logging is unavailable ({type(error).__name__}: {str(error).strip().splitlines()[0]}). "
            f"Logging offline to {run_dir / 'wandb'} instead; upload it later with "
            f"`make wandb-sync DIR={run_dir}` once `wandb login` works.",
            file=sys.stderr,
        )
        return wandb.init(**options, mode="offline", settings=wandb.Settings(console="wrap"))
