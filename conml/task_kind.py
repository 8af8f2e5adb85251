"""What a task asks for (regression or classification): its loss and its reported metric."""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import Tensor


def _per_task_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over the examples of each task ([B, n] -> [B]), ignoring padded examples."""
    if mask is None:
        return values.mean(1)
    mask = mask.to(values.dtype)
    return (values * mask).sum(1) / mask.sum(1).clamp_min(1)


def _squared_error(pred: Tensor, y: Tensor) -> Tensor:
    return (pred - y).pow(2).flatten(2).mean(2)


def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)


def _correct(logits: Tensor, y: Tensor) -> Tensor:
    return (logits.argmax(-1) == y).to(logits.dtype)


class TaskKind:
    """Loss and metric of one kind of task; both return one value per task ([B]).

    A plain class rather than a dataclass, so Hydra passes it to constructors as it is.
    """

    def __init__(
        self,
        name: str,
        metric_name: str,
        higher_is_better: bool,
        example_loss: Callable[[Tensor, Tensor], Tensor],
        example_metric: Callable[[Tensor, Tensor], Tensor],
    ):
        self.name, self.metric_name, self.higher_is_better = name, metric_name, higher_is_better
        self.example_loss, self.example_metric = example_loss, example_metric

    def __repr__(self) -> str:
        return f"TaskKind({self.name})"

    def loss(self, pred: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
        return _per_task_mean(self.example_loss(pred, y), mask)

    def metric(self, pred: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
        return _per_task_mean(self.example_metric(pred, y), mask)

    def better(self, a: float, b: float | None) -> bool:
        """Whether metric value `a` improves on `b` (None: nothing to beat)."""
        return b is None or (a > b if self.higher_is_better else a < b)


REGRESSION = TaskKind("regression", "mse", False, _squared_error, _squared_error)
CLASSIFICATION = TaskKind("classification", "accuracy", True, _cross_entropy, _correct)


def scaled_metric(kind: TaskKind, value: float) -> float:
    """Accuracy is reported in percent, as in the papers; errors as they are."""
    return 100.0 * value if kind is CLASSIFICATION else value
