"""Prompts of (x, f(x)) pairs from a function class, as episodes for in-context learning.

A task is one function f and a prompt of `points` inputs x ~ N(0, I_d). Its support set is the
first `shots` pairs and its query set the next `queries` pairs, so support ∪ query (`batch.whole`)
is the prompt itself: training uses the whole prompt (the autoregressive loss over all its
prefixes, and ConML's kappa = its first half), and meta-testing with `shots=k` asks for the
prediction at point k+1 given the first k, the quantity on the x-axis of Garg et al.'s curves.

Where the randomness comes from, and the trade-off this makes:

- Training meta-batch `s` (tasks s*B .. s*B+B-1, B = `meta_batch_size`) is drawn in one go by a
  generator on the sampling `device`, seeded from (seed, "train", s). Its sizes come from the
  curriculum at step s, and so does the probe u shared by its tasks. Sampling on the GPU costs a
  handful of kernel launches and no host transfer, and task i is still a pure function of
  (seed, i): the same whatever `first`/`count` ask for it, and the same after a resume. The price:
  CUDA and CPU generators produce different numbers, so a GPU run trains on other (equally
  distributed) tasks than a CPU run with the same seed.
- Validation and test tasks are drawn one by one with a CPU generator seeded from
  (seed, split, index), at the full sizes. They are therefore identical on every machine and for
  every batch size, which is what lets curves from different runs and devices be compared.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from conml.data.episode_source import EpisodeSource
from conml.data.functions.curriculum import Curriculum
from conml.data.functions.families import FunctionClass
from conml.data.seeding import SPLITS, episode_generator, episode_seed
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.task_kind import REGRESSION


class FunctionTasks(EpisodeSource):
    """In-context regression tasks; `dims` and `points` are the full sizes the curriculum grows to."""

    kind = REGRESSION

    def __init__(
        self,
        functions: FunctionClass,
        dims: int,
        points: int,
        curriculum: Optional[Curriculum],
        queries: int,
        meta_batch_size: int,
        device: str,
        seed: int,
    ):
        if dims < 1 or points < 2:
            raise ConfigError(
                f"dataset.dims must be at least 1 and dataset.points at least 2, got {dims} and {points}."
            )
        if not 1 <= queries < points:
            raise ConfigError(
                f"dataset.queries must lie in [1, {points - 1}] (fewer than dataset.points={points}), got {queries}."
            )
        if meta_batch_size < 1:
            raise ConfigError(f"dataset.meta_batch_size must be positive, got {meta_batch_size}.")
        self.functions, self.dims, self.points, self.curriculum = functions, dims, points, curriculum
        self.queries, self.meta_batch_size, self.seed = queries, meta_batch_size, seed
        self.device = _sampling_device(device)
        self.shots = points - queries

    def sizes(self, step: int) -> tuple[int, int]:
        """(active dimensions, prompt points) of the training meta-batch at `step`."""
        if self.curriculum is None:
            return self.dims, self.points
        return self.curriculum.at(step, self.dims, self.points)

    def sample(
        self, split: str, first: int, count: int, shots: int | None = None, queries: int | None = None
    ) -> EpisodeBatch:
        if split == "train":
            x, y, probe = self._training_tasks(first, count)
        else:
            x, y, probe = self._fixed_tasks(split, first, count)
        points = x.shape[1]
        queries = self.queries if queries is None else queries
        shots = points - queries if shots is None else shots
        if shots < 0 or queries < 1 or shots + queries > points:
            raise ConfigError(
                f"{split} prompts have {points} points, which cannot hold {shots} shots and {queries} queries; "
                f"choose eval.shots <= {points - 1} and shots + eval.queries <= {points} (or raise dataset.points)."
            )
        end = shots + queries
        return EpisodeBatch(Tasks(x[:, :shots], y[:, :shots]), Tasks(x[:, shots:end], y[:, shots:end]), probe)

    def _training_tasks(self, first: int, count: int) -> tuple[Tensor, Tensor, Tensor]:
        size = self.meta_batch_size
        steps = range(first // size, (first + count - 1) // size + 1)
        drawn = [self._meta_batch(step) for step in steps]
        if len({x.shape for x, _, _ in drawn}) > 1:
            raise ValueError(
                f"train tasks {first}..{first + count - 1} span a curriculum change; request one meta-batch at a time"
            )
        start = first - steps[0] * size
        x = torch.cat([x for x, _, _ in drawn])[start : start + count]
        y = torch.cat([y for _, y, _ in drawn])[start : start + count]
        return x, y, drawn[0][2]

    def _meta_batch(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        g = torch.Generator(self.device).manual_seed(episode_seed(self.seed, "train", step))
        active, points = self.sizes(step)
        params = self.functions.draw(g, self.meta_batch_size, self.dims, active)
        x = self._inputs(g, (self.meta_batch_size, points), active)
        return x, self.functions(params, x).unsqueeze(-1), self._inputs(g, (), active)

    def _fixed_tasks(self, split: str, first: int, count: int) -> tuple[Tensor, Tensor, Tensor]:
        params, xs = [], []
        for index in range(first, first + count):
            g = episode_generator(self.seed, split, index)
            params.append(self.functions.draw(g, 1, self.dims, self.dims))
            xs.append(self._inputs(g, (1, self.points), self.dims))
        x = torch.cat(xs)
        y = self.functions({key: torch.cat([p[key] for p in params]) for key in params[0]}, x).unsqueeze(-1)
        probe = torch.Generator().manual_seed(_probe_seed(self.seed, split, first))
        return x, y, self._inputs(probe, (), self.dims)

    def _inputs(self, g: torch.Generator, shape: tuple[int, ...], active: int) -> Tensor:
        """x ~ N(0, I_active), zero beyond the active coordinates: shape [*shape, dims]."""
        x = torch.randn(*shape, self.dims, generator=g, device=g.device)
        x[..., active:] = 0.0
        return x


def _sampling_device(name: str) -> torch.device:
    """The device training meta-batches are drawn on; `auto` is the GPU when there is one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _probe_seed(seed: int, split: str, first: int) -> int:
    """Seed of the probe of an evaluation batch, a stream apart from every task's own generator."""
    state = np.random.SeedSequence([seed, SPLITS.index(split), first, 1]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])
