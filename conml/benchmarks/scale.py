"""How big the benchmark problems are, how long each implementation is timed, and where."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Scale:
    """`paper`: the reference configurations (GPU). `small`: the same algorithms shrunk to run on a
    2-core CPU in a few minutes; its ratios describe a CPU, not a GPU."""

    name: str
    image_size: int
    queries: int  # query examples per class
    inner_steps: int
    warmup: int
    repeats: int
    max_seconds: float  # timing budget per implementation and configuration
    meta_batches: tuple[int, ...]  # B of the B=4 / B=32 cases
    shots: tuple[int, ...]  # shots of the main MAML cases
    conml_shots: tuple[int, ...]  # shots of B3's preset configuration
    gpt2_layers: int
    gpt2_width: int
    icl_batch: int
    icl_points: int


SMALL = Scale(
    "small",
    image_size=28,
    queries=5,
    inner_steps=1,
    warmup=1,
    repeats=10,
    max_seconds=4.0,
    meta_batches=(4, 32),
    shots=(1, 5),
    conml_shots=(1,),
    gpt2_layers=2,
    gpt2_width=64,
    icl_batch=16,
    icl_points=21,
)
PAPER = Scale(
    "paper",
    image_size=84,
    queries=15,
    inner_steps=5,
    warmup=10,
    repeats=200,
    max_seconds=10.0,
    meta_batches=(4, 32),
    shots=(1, 5),
    conml_shots=(1, 5),
    gpt2_layers=12,
    gpt2_width=256,
    icl_batch=64,
    icl_points=41,
)
# The smallest problems that still run every case: smoke checks of the machinery, not timings.
SMOKE = Scale(
    "tiny",
    image_size=16,
    queries=2,
    inner_steps=1,
    warmup=1,
    repeats=2,
    max_seconds=0.05,
    meta_batches=(2, 4),
    shots=(1,),
    conml_shots=(1,),
    gpt2_layers=1,
    gpt2_width=16,
    icl_batch=4,
    icl_points=11,
)
SCALES = {scale.name: scale for scale in (SMALL, PAPER)}


@dataclass(frozen=True)
class BenchRun:
    """What every case is told: the scale, the device, and whether to profile CPU memory.

    CPU peak memory comes from the profiler's memory timeline, which costs about ten iterations;
    on CUDA the allocator's counters are free and always read.
    """

    scale: Scale
    device: torch.device
    cpu_memory: bool = False

    @property
    def profile_memory(self) -> bool:
        return self.device.type == "cuda" or self.cpu_memory
