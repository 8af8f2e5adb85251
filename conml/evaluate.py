"""Meta-testing on fixed, seed-addressed episode sets: mean ± 95% CI per support size."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from conml.data.episode_source import EpisodeSource
from conml.learners.base import Learner
from conml.metrics import MeanCI, mean_ci
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
    was_training = learner.training
    learner.eval()
    values = []
    starts = range(0, episodes, batch_size)
    label = f"{split} {shots or source.shots}-shot"
    with torch.no_grad():
        for first in tqdm(starts, desc=label, leave=False, disable=not progress, unit="batch"):
            batch = source.sample(split, first, min(batch_size, episodes - first), shots, queries).to(device)
            values.append(learner.evaluate(batch).double().cpu())
    learner.train(was_training)
    per_task = torch.cat(values).numpy()
    return mean_ci([scaled_metric(source.kind, v) for v in per_task])


def meta_test(
    learner: Learner,
    source: EpisodeSource,
    episodes: int,
    batch_size: int,
    device: torch.device,
    shots: list[int] | None,
    queries: int | None,
) -> dict[str, MeanCI]:
    """Test-split results keyed '<metric>@<k>shot', one entry per support size."""
    return {
        f"{source.kind.metric_name}@{k}shot": evaluate(learner, source, "test", episodes, batch_size, device, k, queries)
        for k in (shots or [source.shots])
    }
