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


def relative_gain(plain: list[float], conml: list[float]) -> float:
    """ConML's "relative gain": sum of the ConML runs' accuracies over that of the plain runs', minus 1."""
    return sum(conml) / sum(plain) - 1.0


def mean_t_ci(values) -> MeanCI:
    """Mean ± t(0.975, n-1) * std / sqrt(n): the 95% CI for a handful of seeds, where 1.96 would be too narrow."""
    from scipy.stats import t  # imported here: training, which imports this module, never needs scipy

    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 2:
        return mean_ci(values)
    half = t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    return MeanCI(float(values.mean()), float(half), int(values.size))


def clustering_scores(vectors, labels) -> dict[str, float]:
    """How well vectors cluster by their labels: Silhouette (higher is better), Davies-Bouldin (lower),
    Calinski-Harabasz (higher), in sklearn's Euclidean definitions."""
    from sklearn.metrics import (
        calinski_harabasz_score,
        davies_bouldin_score,
        silhouette_score,
    )  # slow import, see above

    vectors, labels = np.asarray(vectors, dtype=np.float64), np.asarray(labels)
    return {
        "silhouette": float(silhouette_score(vectors, labels)),
        "davies_bouldin": float(davies_bouldin_score(vectors, labels)),
        "calinski_harabasz": float(calinski_harabasz_score(vectors, labels)),
    }
