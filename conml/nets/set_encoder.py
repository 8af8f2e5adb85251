"""The CNAPs set encoder: a DeepSets embedding of a task's images (no labels), z = mean_i phi(x_i).

phi is five blocks of conv3x3 -> BatchNorm -> ReLU -> max-pool 2 and a global average pool (64
channels in CNAPs). CNAPs' images (84 pixels) are never pooled below one pixel; smaller ones, such as
Omniglot's 28-pixel drawings (grey, read as three equal channels), skip the pools that would leave
nothing, so the five blocks run on any image. CNAPs always normalises with the batch
statistics of the set being encoded; here the images of many tasks arrive flattened together with
the index of their task, so statistics and means are taken per task, over its real images only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conml.nets.grey import as_rgb


class SetEncoder(nn.Module):
    """Task representations [T, width] from images [N, 3 or 1, H, W] and their task indices [N]."""

    def __init__(self, width: int = 64, blocks: int = 5, eps: float = 1e-5):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3 if b == 0 else width, width, 3, padding=1) for b in range(blocks))
        self.norm_weight = nn.Parameter(torch.ones(blocks, width))
        self.norm_bias = nn.Parameter(torch.zeros(blocks, width))
        self.eps = eps
        self.out_features = width

    def forward(self, x: Tensor, task: Tensor, num_tasks: int) -> Tensor:
        x = as_rgb(x)
        for b, conv in enumerate(self.convs):
            x = conv(x)
            x = F.relu(task_batch_norm(x, task, num_tasks, self.norm_weight[b], self.norm_bias[b], self.eps))
            if min(x.shape[-2:]) >= 2:
                x = F.max_pool2d(x, 2)
        return task_mean(x.mean((2, 3)), task, num_tasks)


def task_mean(values: Tensor, task: Tensor, num_tasks: int) -> Tensor:
    """Mean of the rows of `values` [N, ...] that belong to each task: [num_tasks, ...]."""
    sums = values.new_zeros(num_tasks, *values.shape[1:]).index_add(0, task, values)
    counts = torch.bincount(task, minlength=num_tasks).clamp_min(1).to(values.dtype)
    return sums / counts.view(-1, *([1] * (values.dim() - 1)))


def task_batch_norm(x: Tensor, task: Tensor, num_tasks: int, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """BatchNorm2d in training mode, with statistics computed separately for each task's images."""
    mean = task_mean(x.mean((2, 3)), task, num_tasks)
    var = task_mean(x.pow(2).mean((2, 3)), task, num_tasks) - mean.pow(2)
    scale = weight / (var.clamp_min(0) + eps).sqrt()
    return (x - mean[task, :, None, None]) * scale[task, :, None, None] + bias[:, None, None]
