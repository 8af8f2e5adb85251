"""Sine-wave regression (Finn et al. 2017): y = A sin(x - phase), A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5]."""

from __future__ import annotations

import torch

from conml.data.episode_source import EpisodeSource
from conml.data.seeding import episode_uniforms
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.task_kind import REGRESSION


class SineWaves(EpisodeSource):
    """K-shot sine-wave tasks; task i of a split draws amplitude, phase and points from its own counter-based stream."""

    kind = REGRESSION
    # Training draws this many steps' tasks per call (EpisodeSource.steps_per_draw): a
    # meta-batch is a few KB and its draw costs mostly per call, against a training step of a few ms.
    steps_per_draw = 32

    def __init__(
        self,
        shots: int,
        queries: int,
        amplitude: tuple[float, float],
        phase: tuple[float, float],
        x_range: tuple[float, float],
        seed: int,
    ):
        if shots < 1 or queries < 1:
            raise ConfigError(f"dataset.shots and dataset.queries must be positive, got {shots} and {queries}.")
        self.shots, self.queries, self.seed = shots, queries, seed
        self.amplitude, self.phase, self.x_range = tuple(amplitude), tuple(phase), tuple(x_range)

    def with_amplitude(self, amplitude: tuple[float, float]) -> SineWaves:
        """The same tasks but amplitudes from `amplitude` (the out-of-distribution test of ConML Fig. 2f)."""
        return SineWaves(
            shots=self.shots,
            queries=self.queries,
            amplitude=amplitude,
            phase=self.phase,
            x_range=self.x_range,
            seed=self.seed,
        )

    def sample(
        self, split: str, first: int, count: int, shots: int | None = None, queries: int | None = None
    ) -> EpisodeBatch:
        shots = self.shots if shots is None else shots
        queries = self.queries if queries is None else queries
        draws = torch.from_numpy(episode_uniforms(self.seed, split, first, count, 2 + shots + queries)).float()
        amplitude, phase = _scale(draws[:, :1], self.amplitude), _scale(draws[:, 1:2], self.phase)
        x = _scale(draws[:, 2:], self.x_range).unsqueeze(2)
        y = amplitude[:, :, None] * torch.sin(x - phase[:, :, None])
        return EpisodeBatch(Tasks(x[:, :shots], y[:, :shots]), Tasks(x[:, shots:], y[:, shots:]))


def _scale(unit: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * unit
