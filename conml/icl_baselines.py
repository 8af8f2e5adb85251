"""The cheap baselines Garg et al. compare in-context learners against, for every prompt prefix at once.

Each takes prompts x [B, n, d], y [B, n] and returns predictions [B, n] whose entry k is the
prediction at x_{k+1} from the first k pairs alone (0 when k = 0, as in the original).
"""

from __future__ import annotations

import torch
from torch import Tensor


def least_squares(x: Tensor, y: Tensor) -> Tensor:
    """Minimum-norm least squares (the optimum for noiseless linear regression), in float64."""
    x64, y64 = x.double(), y.double()
    predictions = torch.zeros_like(y64)
    for k in range(1, x.shape[1]):
        w = torch.linalg.pinv(x64[:, :k]) @ y64[:, :k, None]
        predictions[:, k] = (x64[:, k : k + 1] @ w)[:, 0, 0]
    return predictions.to(y.dtype)


def averaging(x: Tensor, y: Tensor) -> Tensor:
    """w = mean of y_i x_i over the prefix (one step of gradient descent from zero), then <w, x>."""
    sums = torch.cumsum(x * y.unsqueeze(-1), dim=1)
    counts = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)[None, :, None]
    w = torch.cat([torch.zeros_like(sums[:, :1]), (sums / counts)[:, :-1]], dim=1)
    return (w * x).sum(-1)


def nearest_neighbours(x: Tensor, y: Tensor, neighbours: int = 3) -> Tensor:
    """Mean y of the `neighbours` nearest earlier inputs (fewer while the prefix is shorter)."""
    points = x.shape[1]
    distances = torch.cdist(x, x)
    earlier = torch.ones(points, points, dtype=torch.bool, device=x.device).tril(-1)
    distances = distances.masked_fill(~earlier, float("inf"))
    count = min(neighbours, points)
    nearest = distances.topk(count, dim=2, largest=False)
    valid = torch.isfinite(nearest.values).to(y.dtype)
    chosen = y.unsqueeze(1).expand(-1, points, -1).gather(2, nearest.indices)
    return (chosen * valid).sum(-1) / valid.sum(-1).clamp_min(1.0)


BASELINES = {
    "least squares": least_squares,
    "averaging": averaging,
    "3-nearest neighbours": nearest_neighbours,
}
