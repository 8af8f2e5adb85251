"""Fully connected ReLU network (Finn et al.'s 1-40-40-1 regressor for sine waves); it declares the
grouped fast path for per-task weights (`TaskBatched`)."""

from __future__ import annotations

from torch import nn

from conml.nets.task_batched import TaskBatched


class MLP(nn.Sequential, TaskBatched):
    """Linear layers with ReLU between them; `hidden` lists the hidden widths."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], out_features: int):
        widths = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)
