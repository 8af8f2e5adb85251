"""ResNet-12 (Lee et al. 2019, MetaOptNet; Oreshkin et al. 2018): four residual blocks of three 3x3 convs.

Each block: (conv3x3 -> BN -> LeakyReLU) x 2, conv3x3 -> BN, plus a 1x1 conv + BN shortcut, then
LeakyReLU and 2x2 max-pool. Widths 64-160-320-640; global average pooling gives a 640-d embedding.
BatchNorm uses batch statistics (no running averages), as the Conv-4 backbone does, so a task's
statistics come from its own examples. DropBlock of the original is left out. The net declares the
grouped fast path (`TaskBatched`), and every block has a `task_forward` for it.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from conml.nets.task_batched import TaskBatched, task_forward


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bn_eps: float, slope: float):
        super().__init__()
        widths = [in_channels, out_channels, out_channels]
        for i, width in enumerate(widths, start=1):
            self.add_module(f"conv{i}", nn.Conv2d(width, out_channels, 3, padding=1, bias=False))
            self.add_module(f"bn{i}", nn.BatchNorm2d(out_channels, eps=bn_eps, track_running_stats=False))
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels, eps=bn_eps, track_running_stats=False),
        )
        self.act = nn.LeakyReLU(slope)
        self.pool = nn.MaxPool2d(2)

    def _residual(self, x: Tensor, run: Callable[[str, Tensor], Tensor]) -> Tensor:
        """The block, with `run(child name, input)` deciding how each child is applied."""
        out = run("act", run("bn1", run("conv1", x)))
        out = run("act", run("bn2", run("conv2", out)))
        out = run("bn3", run("conv3", out))
        return run("pool", run("act", out + run("shortcut", x)))

    def forward(self, x: Tensor) -> Tensor:
        return self._residual(x, lambda name, h: getattr(self, name)(h))

    def task_forward(self, params: dict[str, Tensor], x: Tensor, prefix: str) -> Tensor:
        return self._residual(x, lambda name, h: task_forward(getattr(self, name), params, h, f"{prefix}{name}."))


class ResNet12(nn.Sequential, TaskBatched):
    """Residual blocks of `channels` widths, global average pooling, then an optional linear head."""

    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, ...],
        out_features: int | None,
        image_size: int,
        bn_eps: float,
        slope: float,
    ):
        widths = [in_channels, *channels]
        layers: list[nn.Module] = [ResidualBlock(a, b, bn_eps, slope) for a, b in zip(widths[:-1], widths[1:])]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(*layers)
        with torch.no_grad():
            self.embedding_size = self(torch.zeros(2, in_channels, image_size, image_size)).shape[1]
        if out_features is not None:
            self.append(nn.Linear(self.embedding_size, out_features))
