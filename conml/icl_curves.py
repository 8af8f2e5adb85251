"""Error against the number of in-context examples (ConML Table 5, Fig. 3).

A curve gives, for k = 0 .. n-1, the squared error of the prediction at point k+1 of a prompt
from its first k points, averaged over tasks 0 .. episodes-1 of the test split (mean and 95% CI).
Trained learners read all n predictions off one causal pass over each prompt; the baselines of
`conml.icl_baselines` see the same prompts. Two curves compare as in the paper:

- relative minimum error = min_k err_conml(k) / min_k err_plain(k);
- shot spare = the first k at which the ConML run's curve reaches the plain run's minimum error,
  minus the k at which the plain run attains it (negative: fewer examples needed).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from hydra.utils import get_object
from matplotlib.figure import Figure
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from conml.build import build_source_and_learner
from conml.checkpoint import load_checkpoint
from conml.config import Checkpoint
from conml.data.functions import FunctionTasks
from conml.episodes import Tasks
from conml.errors import ConfigError
from conml.icl_baselines import BASELINES
from conml.learners.icl import InContextLearner
from conml.metrics import mean_ci

# Dataset settings that do not change the test prompts.
_SAMPLING_ONLY = ("seed", "device", "meta_batch_size")


@dataclass
class Curve:
    """Mean squared error (and its 95% CI half-width) after each number of in-context examples."""

    name: str
    shots: list[int]
    mean: list[float]
    ci95: list[float]

    def minimum(self) -> tuple[int, float]:
        """(shots, error) where the curve is lowest; the fewest shots on a tie."""
        best = min(range(len(self.mean)), key=lambda i: (self.mean[i], i))
        return self.shots[best], self.mean[best]


def relative_minimum_error(plain: Curve, conml: Curve) -> float:
    return conml.minimum()[1] / plain.minimum()[1]


def shot_spare(plain: Curve, conml: Curve) -> Optional[int]:
    """Shots the ConML run's curve needs to match the plain run's best, minus the plain run's; None if never."""
    shots, error = plain.minimum()
    reached = [k for k, e in zip(conml.shots, conml.mean) if e <= error]
    return reached[0] - shots if reached else None


def fixed_prompts(source: FunctionTasks, episodes: int, batch_size: int) -> Iterator[Tasks]:
    """Whole prompts of test tasks 0 .. episodes-1, in batches."""
    for first in range(0, episodes, batch_size):
        yield source.sample("test", first, min(batch_size, episodes - first)).whole


def curve(name: str, errors: list[torch.Tensor]) -> Curve:
    """A curve from per-task squared errors [tasks, n] gathered over batches."""
    table = torch.cat(errors).double()
    stats = [mean_ci(table[:, k].numpy()) for k in range(table.shape[1])]
    return Curve(name, list(range(table.shape[1])), [s.mean for s in stats], [s.ci95 for s in stats])


def learner_curve(
    name: str, learner: InContextLearner, source: FunctionTasks, episodes: int, batch_size: int, device: torch.device
) -> Curve:
    errors = []
    learner.eval()
    with torch.no_grad():
        for prompt in tqdm(
            fixed_prompts(source, episodes, batch_size), desc=name, leave=False, total=math.ceil(episodes / batch_size)
        ):
            prompt = prompt.to(device)
            predictions, _ = learner.prefix_predictions(prompt)
            errors.append((predictions - prompt.y).pow(2).flatten(2).mean(2).cpu())
    return curve(name, errors)


def baseline_curves(
    source: FunctionTasks, episodes: int, batch_size: int, baselines: dict[str, Callable] = BASELINES
) -> list[Curve]:
    errors: dict[str, list[torch.Tensor]] = {name: [] for name in baselines}
    for prompt in fixed_prompts(source, episodes, batch_size):
        y = prompt.y[..., 0]
        for name, baseline in baselines.items():
            errors[name].append((baseline(prompt.x, y) - y).pow(2))
    return [curve(name, values) for name, values in errors.items()]


@dataclass
class TrainedRun:
    """A finished run rebuilt from a checkpoint: its name, learner, test tasks and settings."""

    name: str
    learner: InContextLearner
    source: FunctionTasks
    config: dict
    checkpoint: str


def load_run(run_dir: Path, checkpoint: Optional[str], device: torch.device) -> TrainedRun:
    """The learner of `run_dir/checkpoints/<checkpoint>.pt` (None: the one the run meta-tested), with its dataset."""
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    config = last["config"]
    _check_in_context(run_dir, config)
    # eval.checkpoint is stored as the config's enum (Checkpoint.best), or as its value by older runs
    checkpoint = checkpoint or Checkpoint(config["eval"]["checkpoint"]).value
    state = last if checkpoint == "last" else load_checkpoint(run_dir / "checkpoints" / f"{checkpoint}.pt")
    source, learner = build_source_and_learner(OmegaConf.create(config), device)
    learner.load_state_dict(state["learner"])
    return TrainedRun(config["name"], learner, source, config, checkpoint)


def _check_in_context(run_dir: Path, config: dict) -> None:
    """Curves are drawn for in-context learners on function-class prompts; say so before loading anything else."""
    learner, dataset = (get_object(config[group]["_target_"]) for group in ("learner", "dataset"))
    if not _subclass(learner, InContextLearner) or not _subclass(dataset, FunctionTasks):
        raise ConfigError(
            f"{run_dir} is not an in-context learning run (learner {config['learner']['_target_']}, dataset "
            f"{config['dataset']['_target_']}); curves need learner=icl on a function-class dataset "
            "(dataset=linear_regression, ...)."
        )


def _subclass(built: object, base: type) -> bool:
    return isinstance(built, type) and issubclass(built, base)


def check_same_test_tasks(runs: list[TrainedRun]) -> None:
    """Runs compared on one test set must draw their prompts the same way (the seed may differ)."""
    settings = [{k: v for k, v in run.config["dataset"].items() if k not in _SAMPLING_ONLY} for run in runs]
    for run, other in zip(runs[1:], settings[1:]):
        if other != settings[0]:
            raise ConfigError(
                f"Run '{run.name}' was trained on other tasks than '{runs[0].name}' ({other} vs {settings[0]}); "
                "curves compare runs of one function class at one size only."
            )


def plot(curves: list[Curve], learned: int, path: Path, title: str) -> None:
    """Error against shots; the first `learned` curves are trained learners (solid, with CI bands)."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    for i, c in enumerate(curves):
        if i < learned:
            line = axes.plot(c.shots, c.mean, marker="o", markersize=3, label=c.name)[0]
            low = [m - h for m, h in zip(c.mean, c.ci95)]
            high = [m + h for m, h in zip(c.mean, c.ci95)]
            axes.fill_between(c.shots, low, high, color=line.get_color(), alpha=0.2)
        else:
            axes.plot(c.shots, c.mean, linestyle="--", linewidth=1, label=c.name)
    # Baselines can start far above the learners (averaging from one example); clip them.
    axes.set_ylim(0.0, 1.25 * max(max(c.mean) for c in curves[:learned]))
    axes.set(xlabel="in-context examples", ylabel="squared error", title=title)
    axes.legend()
    figure.savefig(path, dpi=150)


def comparison(curves: list[Curve]) -> dict:
    """Relative minimum error and shot spare of the second curve against the first (none for one curve)."""
    if len(curves) < 2:
        return {}
    plain, conml = curves[0], curves[1]
    return {
        "plain": {"name": plain.name, **dict(zip(("shots_at_minimum", "minimum"), plain.minimum()))},
        "conml": {"name": conml.name, **dict(zip(("shots_at_minimum", "minimum"), conml.minimum()))},
        "relative_minimum_error": relative_minimum_error(plain, conml),
        "shot_spare": shot_spare(plain, conml),
    }


def write_json(path: Path, learned: list[Curve], baselines: list[Curve], metrics: dict, test_set: dict) -> None:
    payload = {"test_set": test_set, "metrics": metrics, "curves": [asdict(c) for c in learned + baselines]}
    path.write_text(json.dumps(payload, indent=2))
