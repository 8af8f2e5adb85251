"""Summary statistics reported for meta-test results and paper tables."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class MeanCI:
    """Mean with the half-width of its normal-approximation 95% confidence interval."""

    mean: float
    ci95: float
    count: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.ci95:.4f}"

    def as_dict(self) -> dict:
        return asdict(self)


def mean_ci(values) -> MeanCI:
    """Mean ± 1.96 * std / sqrt(n) (sample std, ddof = 1), as few-shot papers report."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("mean_ci needs at least one value")
    spread = values.std(ddof=1) if values.size > 1 else 0.0
    return MeanCI(float(values.mean()), float(1.96 * spread / math.sqrt(values.size)), int(values.size))


def relative_gain(baseline: list[float], improved: list[float]) -> float:
    """ConML's "relative gain": sum of improved accuracies over sum of baseline accuracies, minus 1."""
    return sum(improved) / sum(baseline) - 1.0
