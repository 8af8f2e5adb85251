"""Conv-4 family backbone of few-shot learning: blocks of conv3x3 -> BatchNorm -> ReLU -> maxpool2.

With `out_features` it ends in a linear classifier (MAML-family); without, it is an embedding
network (ProtoNet, MatchingNet). configs/model/conv4.yaml has 64 channels (learn2learn's setting; the
original MAML used 32 on miniImageNet: conv4_32.yaml). Finn et al.'s Omniglot network downsamples
with stride-2 convolutions instead of max-pooling and averages the last feature map over space
(`stride=2, max_pool=false, spatial_mean=true`: 28 -> 14 -> 7 -> 4 -> 2 pixels, then 64 features). It
declares the grouped fast path for per-task weights (`TaskBatched`).
"""

from __future__ import annotations

import torch
from torch import nn

from conml.nets.task_batched import TaskBatched


class ConvNet(nn.Sequential, TaskBatched):
    """`blocks` conv blocks of `hidden` channels, flattened, then an optional linear head."""

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        blocks: int,
        out_features: int | None,
        image_size: int,
        bn_eps: float,
        stride: int,
        max_pool: bool,
        spatial_mean: bool,
    ):
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(blocks):
            layers += [
                nn.Conv2d(channels, hidden, 3, stride=stride, padding=1),
                nn.BatchNorm2d(hidden, eps=bn_eps, track_running_stats=False),
                nn.ReLU(),
            ]
            if max_pool:
                layers.append(nn.MaxPool2d(2))
            channels = hidden
        if spatial_mean:
            layers.append(nn.AdaptiveAvgPool2d(1))
        layers.append(nn.Flatten())
        super().__init__(*layers)
        with torch.no_grad():
            self.embedding_size = self(torch.zeros(2, in_channels, image_size, image_size)).shape[1]
        if out_features is not None:
            self.append(nn.Linear(self.embedding_size, out_features))
