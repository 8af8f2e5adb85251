"""Fully connected ReLU network (Finn et al.'s 1-40-40-1 regressor for sine waves)."""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """Linear layers with ReLU between them; `hidden` lists the hidden widths."""

    def __init__(self, in_features: int = 1, hidden: tuple[int, ...] = (40, 40), out_features: int = 1):
        widths = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)
