"""Meta-testing on fixed, seed-addressed episode sets: mean ± 95% CI per support size."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from conml.build import build_source_and_learner, resolve_device
from conml.checkpoint import load_checkpoint
from conml.data.episode_source import EpisodeSource
from conml.errors import ConfigError, UserError
from conml.launch import Launch
from conml.learners.base import Learner
from conml.metrics import MeanCI, mean_ci
from conml.progress import tracked
from conml.task_kind import scaled_metric


def evaluate(
    learner: Learner,
    source: EpisodeSource,
    split: str,
    episodes: int,
    batch_size: int,
    device: torch.device,
    shots: int | None = None,
    queries: int | None = None,
    progress: bool = True,
) -> MeanCI:
    """The learner's metric on tasks 0 .. episodes-1 of `split`, whatever the batch size."""
    values = []
    starts = range(0, episodes, batch_size)
    label = progress_label(split, shots or source.shots)
    for first in tracked(starts, desc=label, unit="batch", leave=False, disable=not progress):
        batch = source.sample(split, first, min(batch_size, episodes - first), shots, queries).to(device)
        values.append(learner.meta_test(batch).double().cpu())
    per_task = torch.cat(values).numpy()
    return mean_ci([scaled_metric(source.kind, v) for v in per_task])


def progress_label(split: str, shots: int | None) -> str:
    """'test 5-shot', or 'test variable-shot' for sources whose support sizes vary (shots None)."""
    return f"{split} {'variable' if shots is None else shots}-shot"


def meta_test(
    learner: Learner,
    source: EpisodeSource,
    episodes: int,
    batch_size: int,
    device: torch.device,
    shots: list[int] | None,
    queries: int | None,
    progress: bool = True,
) -> dict[str, MeanCI]:
    """Test-split results keyed '<metric>@<k>shot', one entry per support size (`progress`: show it).

    Variable-shot sources (shots None) are keyed '<metric>'. A source with several test sets
    (Meta-Dataset's per-source sets, from its `test_sets()`) is tested on each, keys prefixed '<set>/'.
    """
    test_sets = source.test_sets()
    if test_sets is not None:
        return {
            f"{name}/{key}": value
            for name, test_set in test_sets.items()
            for key, value in meta_test(
                learner, test_set, episodes, batch_size, device, shots, queries, progress
            ).items()
        }
    metric = source.kind.metric_name
    return {
        (metric if k is None else f"{metric}@{k}shot"): evaluate(
            learner, source, "test", episodes, batch_size, device, k, queries, progress
        )
        for k in (shots or [source.shots])
    }


def main(argv: list[str] | None = None) -> None:
    """Meta-test a finished or interrupted run's checkpoint again, e.g. on more episodes or shots."""
    parser = argparse.ArgumentParser(prog="python -m conml.evaluate", description=main.__doc__)
    parser.add_argument("run_dir", type=Path, help="a run folder (outputs/<name>/<date>_<time>)")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.add_argument("--episodes", type=int, help="test tasks (default: the run's eval.episodes)")
    parser.add_argument("--shots", type=int, nargs="+", help="support sizes (default: the run's eval.shots)")
    parser.add_argument(
        "--device", default="auto", type=_device, help="auto (the GPU if there is one), cpu, cuda or cuda:N"
    )
    args = parser.parse_args(argv)
    try:
        check_counts(args.episodes, args.shots)
        state = load_checkpoint(args.run_dir / "checkpoints" / f"{args.checkpoint}.pt")
        cfg = OmegaConf.create(state["config"])
        device = args.device
        source, learner = build_source_and_learner(cfg, device)
        learner.load_state_dict(state["learner"])
        episodes = cfg.eval.episodes if args.episodes is None else args.episodes
        results = meta_test(
            learner,
            source,
            episodes,
            cfg.eval.batch_size,
            device,
            args.shots or cfg.eval.shots,
            cfg.eval.queries,
            Launch.from_environment().progress,
        )
    except UserError as error:
        print(f"\nerror: {error}\n", file=sys.stderr)
        sys.exit(2)
    out = args.run_dir / f"eval_{args.checkpoint}_{episodes}episodes.json"
    out.write_text(json.dumps({key: value.as_dict() for key, value in results.items()}, indent=2))
    for key, value in results.items():
        print(f"{key:>20}: {value}  ({value.count} tasks)")
    print(f"written to {out}")


def check_counts(episodes: int | None, shots: list[int] | None) -> None:
    """--episodes and --shots count tasks and examples: each is at least 1 (None: the run's own setting)."""
    if episodes is not None and episodes < 1:
        raise ConfigError(
            f"--episodes {episodes} is out of range: it is the number of test tasks, at least 1 (e.g. --episodes 600); "
            "leave it out to test on the run's own eval.episodes."
        )
    if shots is not None and min(shots) < 1:
        raise ConfigError(
            f"--shots {' '.join(str(k) for k in shots)} is out of range: a support size is at least 1 (e.g. --shots 1 5); "
            "leave it out to test at the run's own eval.shots."
        )


def _device(name: str) -> torch.device:
    """--device, checked against this machine when the command line is read (so errors name the flag)."""
    try:
        return resolve_device(name)
    except (ConfigError, RuntimeError):
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{name} was requested but this machine has no usable CUDA device (torch {torch.__version__}, CUDA build "
                f"{torch.version.cuda}); use --device cpu or --device auto"
            ) from None
        raise argparse.ArgumentTypeError(
            f"{name!r} is not a device torch knows; use --device auto, cpu, cuda or cuda:N"
        ) from None


if __name__ == "__main__":
    main()
