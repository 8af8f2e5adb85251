"""Garg et al.'s curriculum: training prompts start short and low-dimensional and grow to full size.

The original keeps a counter that it bumps once per step; after `step` updates a value is
`min(start + inc * (step // interval), end)`. Here that is a pure function of the step, so the
sizes of any meta-batch follow from its index alone and a resumed run continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from conml.errors import ConfigError


@dataclass(frozen=True)
class Curriculum:
    """Starting sizes and their increments every `interval` steps; the task family gives the end sizes."""

    dims_start: int
    points_start: int
    dims_inc: int
    points_inc: int
    interval: int

    def __post_init__(self):
        if self.dims_start < 1 or self.points_start < 2:
            raise ConfigError(
                f"dataset.curriculum starts at dims_start={self.dims_start}, points_start={self.points_start}; "
                "a prompt needs at least 1 dimension and 2 points."
            )
        if self.dims_inc < 0 or self.points_inc < 0 or self.interval < 1:
            raise ConfigError(
                f"dataset.curriculum needs non-negative increments and interval >= 1, got dims_inc={self.dims_inc}, "
                f"points_inc={self.points_inc}, interval={self.interval}."
            )

    def at(self, step: int, dims: int, points: int) -> tuple[int, int]:
        """(active dimensions, prompt points) at training step `step`, capped at the full sizes."""
        grown = step // self.interval
        return min(self.dims_start + self.dims_inc * grown, dims), min(
            self.points_start + self.points_inc * grown, points
        )
