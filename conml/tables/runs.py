"""Finished runs as a table sees them: their results.json, config and, when local, their run folder.

Runs are found by scanning folders for `results.json` (any depth, so one sweep folder or the whole
`outputs/` both work), or fetched from a W&B project through the public API. Expensive per-run
analyses (clustering of task models, error curves) are read from the run's analysis/ folder, which
`scripts/table.py export` writes into its own output folder (results.json and analysis/, no
checkpoints); a run without them has them computed from its checkpoint, in memory. Reading runs never
writes into their folders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from omegaconf import OmegaConf

from conml.build import build_source_and_learner
from conml.checkpoint import load_checkpoint
from conml.errors import DataError


@dataclass
class Run:
    """One finished job: `test` maps '<metric>@<k>shot' to {mean, ci95, count}."""

    name: str
    seed: int
    steps: int
    test: dict[str, dict]
    config: dict
    train_seconds: float | None = None
    peak_memory_mb: float | None = None
    conml_grad_share: float | None = None
    run_dir: Path | None = None
    finished_at: float = 0.0
    source: str = "local"
    _analyses: dict = field(default_factory=dict, repr=False)

    def setting(self, path: str) -> Any:
        """A value of the run's config by dotted path ('dataset.held_out'); None when absent."""
        return setting(self.config, path)

    def load(self, device: torch.device, checkpoint: str | None = None, settings: dict[str, Any] | None = None):
        """(episode source, learner) rebuilt from the run's checkpoint (default: the one it was tested with), in eval
        mode; `settings` ({dotted key: value}) replace settings of the run's config that do not change its weights
        (`learner.eval_inner_steps`), so that an analysis builds the learner it needs instead of altering one."""
        if self.run_dir is None:
            raise DataError(f"Run {self.name} (seed {self.seed}) came from W&B and has no local checkpoint to analyse.")
        chosen = checkpoint or self.setting("eval.checkpoint") or "best"
        path = self.run_dir / "checkpoints" / f"{chosen}.pt"
        if not path.is_file():
            raise DataError(
                f"Run {self.name} (seed {self.seed}) in {self.run_dir} has no checkpoint {path.name}, and an analysis "
                "it lacks (or computed at other training steps) needs one. A run exported with `scripts/table.py export` "
                "keeps only its results.json and the analyses cached when it was exported: export it again from the "
                "folder it was trained in, which computes the missing analyses first."
            )
        state = load_checkpoint(path)
        config = OmegaConf.create(state["config"])
        for key, value in (settings or {}).items():
            OmegaConf.update(config, key, value)
        source, learner = build_source_and_learner(config, device)
        learner.load_state_dict(state["learner"])
        return source, learner.eval()

    def analysis(self, name: str, compute: Callable[[Run], dict]) -> dict | None:
        """<run_dir>/analysis/<name>.json if it was computed at the run's training steps, else `compute(self)`
        (kept in memory, for `analyses` to export); None for runs without a folder. The file records the steps
        it was computed at, so a resumed (longer) run is analysed again."""
        if name in self._analyses:
            return self._analyses[name]
        if self.run_dir is None:
            return None
        path = self.run_dir / "analysis" / f"{name}.json"
        found = json.loads(path.read_text()) if path.exists() else None
        if found is None or found.get("steps") != self.steps:
            found = {"steps": self.steps, **compute(self)}
        self._analyses[name] = found
        return found

    @property
    def analyses(self) -> dict[str, dict]:
        """The analyses read or computed so far, by name."""
        return dict(self._analyses)


def setting(config: dict, path: str) -> Any:
    """A value of a run's config (a plain dict) by dotted path ('dataset.held_out'); None when absent."""
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def read_run(path: Path) -> Run:
    """The run whose results.json is `path`."""
    try:
        results = json.loads(path.read_text())
        return Run(
            name=results["name"],
            seed=int(results["seed"]),
            steps=int(results["steps"]),
            test=results["test"],
            config=results.get("config", {}),
            train_seconds=results.get("train_seconds"),
            peak_memory_mb=results.get("peak_memory_mb"),
            conml_grad_share=results.get("conml_grad_share_median"),
            run_dir=path.parent,
            finished_at=path.stat().st_mtime,
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise DataError(
            f"{path} is not a results.json written by `python -m conml.train` ({type(error).__name__}: {error}). "
            "Delete it or re-run that job."
        ) from None


def collect_runs(roots: Iterable[Path]) -> list[Run]:
    """Every run with a results.json under `roots` (each a run folder or any folder above run folders)."""
    runs = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise DataError(
                f"Runs folder {root} does not exist. Pass the sweep folder that `scripts/table.py run` printed, or outputs/."
            )
        paths = [root / "results.json"] if (root / "results.json").exists() else sorted(root.rglob("results.json"))
        runs += [read_run(p) for p in paths]
    return runs


def wandb_runs(project: str, groups: Iterable[str], api: Any = None) -> list[Run]:
    """Finished runs of the W&B groups `groups` in `project` ('entity/project'), via the public API.

    Only the logged summary (test results) and config are there: analyses that need a
    checkpoint are shown as missing for these runs.
    """
    if api is None:
        import wandb

        api = wandb.Api()
    runs = []
    for group in groups:
        for remote in api.runs(project, filters={"group": group, "state": "finished"}):
            summary, config = dict(remote.summary), dict(remote.config)
            test = {
                key[len("test/") :]: {"mean": value, "ci95": summary.get(f"{key}_ci95"), "count": None}
                for key, value in summary.items()
                if key.startswith("test/") and not key.endswith("_ci95")
            }
            runs.append(
                Run(
                    name=config.get("name", group),
                    seed=int(config.get("seed", 0)),
                    steps=int(summary.get("_step", 0)),
                    test=test,
                    config=config,
                    source=f"wandb:{project}/{remote.id}",
                )
            )
    return runs
