"""Sine-wave regression (Finn et al. 2017): y = A sin(x - phase), A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5]."""

from __future__ import annotations

import math

import torch

from conml.data.seeding import episode_generator
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.task_kind import REGRESSION


class SineWaves:
    """K-shot sine-wave tasks; each task draws its own amplitude and phase, support and query points."""

    kind = REGRESSION

    def __init__(
        self,
        shots: int = 10,
        queries: int = 10,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
        seed: int = 0,
    ):
        if shots < 1 or queries < 1:
            raise ConfigError(f"dataset.shots and dataset.queries must be positive, got {shots} and {queries}.")
        self.shots, self.queries, self.seed = shots, queries, seed
        self.amplitude, self.phase, self.x_range = tuple(amplitude), tuple(phase), tuple(x_range)

    def sample(self, split: str, first: int, count: int, shots: int | None = None, queries: int | None = None) -> EpisodeBatch:
        shots = self.shots if shots is None else shots
        queries = self.queries if queries is None else queries
        draws = [self._task(split, first + i, shots + queries) for i in range(count)]
        x = torch.stack([d[0] for d in draws])
        y = torch.stack([d[1] for d in draws])
        return EpisodeBatch(Tasks(x[:, :shots], y[:, :shots]), Tasks(x[:, shots:], y[:, shots:]))

    def _task(self, split: str, index: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = episode_generator(self.seed, split, index)
        amplitude, phase = (_uniform(g, bounds, 1) for bounds in (self.amplitude, self.phase))
        x = _uniform(g, self.x_range, size).unsqueeze(1)
        return x, amplitude * torch.sin(x - phase)


def _uniform(g: torch.Generator, bounds: tuple[float, float], size: int) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(size, generator=g)
