"""Kim, Ricci & Serre (2018) CNNs for same-different, as instantiated by Gupta et al. (2025).

Every conv layer is followed by BatchNorm, ReLU and 3x3 max-pooling with stride 2 (padding 1).
The first layer has its own kernel size and padding; later layers use 2x2 kernels with padding 1
and double the filters. The head is `fc_layers` fully connected layers of `fc_units` with ReLU
and dropout, then a linear 2-way classifier. Weights are Xavier-uniform, biases zero, BatchNorm
gamma 1 and beta 0. Conv2/Conv4/Conv6 are settings of this one class (configs/model/kim_conv*.yaml).
BatchNorm keeps running statistics (`track_running_stats`, as nn.BatchNorm2d does by default), which
normalise in eval mode, on the grouped fast path (`TaskBatched`) as on any other; the MAML protocols
turn them off, so that each task is normalised by its own batch statistics at training and at test.
"""

from __future__ import annotations

from torch import nn

from conml.nets.task_batched import TaskBatched


class KimConvNet(nn.Sequential, TaskBatched):
    """Conv blocks of `channels` filters, flattened, then the fully connected head."""

    def __init__(
        self,
        channels: list[int],
        first_kernel: int,
        first_padding: int,
        kernel: int,
        padding: int,
        fc_units: int,
        fc_layers: int,
        dropout: float,
        out_features: int,
        in_channels: int,
        image_size: int,
        track_running_stats: bool,
    ):
        layers: list[nn.Module] = []
        previous, size = in_channels, image_size
        for index, width in enumerate(channels):
            k, p = (first_kernel, first_padding) if index == 0 else (kernel, padding)
            layers += [
                nn.Conv2d(previous, width, k, padding=p),
                nn.BatchNorm2d(width, track_running_stats=track_running_stats),
                nn.ReLU(),
                nn.MaxPool2d(3, stride=2, padding=1),
            ]
            convolved = size + 2 * p - k + 1
            size = (convolved + 2 - 3) // 2 + 1
            previous = width
        layers.append(nn.Flatten())
        features = embedding_size = previous * size * size
        for _ in range(fc_layers):
            layers += [nn.Linear(features, fc_units), nn.ReLU(), nn.Dropout(dropout)]
            features = fc_units
        layers.append(nn.Linear(features, out_features))
        super().__init__(*layers)
        self.embedding_size = embedding_size
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
