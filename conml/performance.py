"""GPU speed settings: numeric precision, memory layout and cuDNN autotuning.

The meta-learning workloads here are small convnets and transformers whose cost is kernel launches
more than arithmetic (docs/benchmarks.md), so these settings matter less than batching tasks, but
TF32/bf16 tensor cores and channels_last still cut the time of each convolution and matmul. They
act on CUDA only; on a CPU they change nothing, so CPU results stay exact and reproducible.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from conml.objective import ConMLObjective


class Precision(str, Enum):
    """Arithmetic of float32 convolutions and matmuls on a GPU; weights are stored in float32."""

    float32 = "float32"  # IEEE float32 throughout (the reference for correctness checks)
    tf32 = "tf32"  # TF32 tensor cores for float32 convolutions and matmuls (Ampere and newer)
    bf16 = "bf16"  # bfloat16 autocast of the forward pass, TF32 for what stays float32


@dataclass
class PerformanceSettings:
    """How a run uses the GPU.

    bf16 in MAML's second-order path is a correctness risk: check it against float32
    (`make bench` gates it) before trusting results. `cudnn_benchmark` autotunes convolutions per
    input shape: worth turning on for fixed-shape episodes (miniImageNet, tieredImageNet), costly
    when shapes vary from batch to batch (Meta-Dataset), where every new shape is tuned again.
    """

    precision: Precision = Precision.tf32
    channels_last: bool = False
    cudnn_benchmark: bool = False


def apply_backend_flags(settings: PerformanceSettings, device: torch.device) -> None:
    """Set the process-wide precision and autotuning flags for `device`."""
    if device.type != "cuda":
        return
    reduced = settings.precision != Precision.float32
    torch.set_float32_matmul_precision("high" if reduced else "highest")
    torch.backends.cuda.matmul.allow_tf32 = reduced
    torch.backends.cudnn.allow_tf32 = reduced
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark


def autocast(settings: PerformanceSettings, device: torch.device) -> AbstractContextManager:
    """The autocast context of the forward pass (a no-op unless bf16 on CUDA)."""
    if device.type == "cuda" and settings.precision == Precision.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def apply_performance(
    settings: PerformanceSettings, device: torch.device, learner: nn.Module, objective: ConMLObjective
) -> ConMLObjective:
    """Apply `settings` to a run: backend flags, the learner's memory layout, and autocast.

    Returns the objective to train with: under bf16, the same objective with its forward passes under autocast.
    """
    apply_backend_flags(settings, device)
    if device.type != "cuda":
        return objective
    if settings.channels_last:
        learner.to(memory_format=torch.channels_last)
    if settings.precision == Precision.bf16:
        return ConMLObjective(objective.settings, objective.shard, lambda: autocast(settings, device))
    return objective
