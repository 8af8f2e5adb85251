"""Timing, peak memory and op counts of benchmark iterations.

Implementations under comparison are timed interleaved, round by round in rotating order, so a
burst of load from another process slows all of them alike. On a CPU with one thread the clock is
the process's CPU time, which time-slicing by other processes does not inflate; otherwise it is
wall-clock time around a synchronised iteration.
"""

from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conml.benchmarks.scale import BenchRun

# ATen ops that only re-describe memory; everything else costs a kernel launch on a GPU.
_VIEW_OPS = frozenset(
    {
        "view",
        "_unsafe_view",
        "reshape",
        "_reshape_alias",
        "permute",
        "expand",
        "select",
        "slice",
        "detach",
        "alias",
        "transpose",
        "t",
        "unsqueeze",
        "squeeze",
        "as_strided",
        "unflatten",
        "flatten",
        "split",
        "chunk",
        "unbind",
        "narrow",
        "view_as",
        "expand_as",
        "lift_fresh",
    }
)


@dataclass
class Variant:
    """One implementation under comparison: `run` performs one iteration."""

    name: str
    run: Callable[[], object]
    # Count ops and peak memory; off for a CUDA-graph replay, which dispatches no ops and
    # allocates nothing (its memory was taken at capture).
    profile: bool = True


@dataclass
class Timing:
    """Per-iteration cost of one implementation; times in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    iterations: int
    peak_memory_mb: Optional[float]
    ops: Optional[int]  # ATen ops per iteration that are not views (about one kernel each on a GPU)

    @property
    def per_second(self) -> float:
        return 1000.0 / self.median_ms

    def as_dict(self) -> dict:
        return asdict(self) | {"per_second": self.per_second}


def clock_name(device: torch.device) -> str:
    """`cpu-time` when one CPU thread does all the work, else `wall`."""
    return "cpu-time" if device.type == "cpu" and torch.get_num_threads() == 1 else "wall"


def measure(variants: list[Variant], run: BenchRun, min_repeats: int = 3) -> tuple[dict[str, Timing], list[str]]:
    """Time each variant up to `repeats` times (fewer past `max_seconds` of its own, never under `min_repeats`).

    Returns the timings and one line per variant that ran out of GPU memory (it is left out).
    """
    device, scale = run.device, run.scale
    clock = time.process_time if clock_name(device) == "cpu-time" else time.perf_counter
    failures: list[str] = []
    variants = [v for v in variants if _fits(v, scale.warmup, device, failures)]
    samples: dict[str, list[float]] = {v.name: [] for v in variants}
    for round_index in range(scale.repeats):
        active = [v for v in variants if len(samples[v.name]) < min_repeats or sum(samples[v.name]) < scale.max_seconds]
        if not active:
            break
        shift = round_index % len(active)
        for variant in active[shift:] + active[:shift]:
            _synchronize(device)
            started = clock()
            variant.run()
            _synchronize(device)
            samples[variant.name].append(clock() - started)
    timings = {
        v.name: Timing(
            median_ms=1000.0 * statistics.median(samples[v.name]),
            p10_ms=1000.0 * _quantile(samples[v.name], 0.1),
            p90_ms=1000.0 * _quantile(samples[v.name], 0.9),
            iterations=len(samples[v.name]),
            peak_memory_mb=peak_memory_mb(v.run, device) if v.profile and run.profile_memory else None,
            ops=count_ops(v.run) if v.profile else None,
        )
        for v in variants
    }
    return timings, failures


def _fits(variant: Variant, warmup: int, device: torch.device, failures: list[str]) -> bool:
    """Warm the variant up; False (and a line in `failures`) if it runs out of GPU memory."""
    try:
        for _ in range(warmup):
            variant.run()
        _synchronize(device)
        return True
    except torch.cuda.OutOfMemoryError:
        failures.append(f"{variant.name}: out of GPU memory, left out")
        torch.cuda.empty_cache()
        return False


def peak_memory_mb(run: Callable[[], object], device: torch.device) -> Optional[float]:
    """Peak memory allocated during one iteration above what was live before it (MiB)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    if device.type == "cpu":
        return _cpu_peak_memory_mb(run)
    return None


def _cpu_peak_memory_mb(run: Callable[[], object]) -> float:
    # The profiler's memory timeline is the one record of CPU tensor allocations and frees.
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    with warnings.catch_warnings():  # the profiler reads .grad of non-leaf tensors and says so
        warnings.simplefilter("ignore", UserWarning)
        with profile(
            activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
        ) as prof:
            run()
    live = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action == Action.CREATE:
            live += size
        elif action == Action.DESTROY:
            live -= size
        peak = max(peak, live)
    return peak / 2**20


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ not in _VIEW_OPS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def count_ops(run: Callable[[], object]) -> int:
    """Non-view ATen ops dispatched by one iteration (a CUDA-graph replay counts as none)."""
    with _OpCounter() as counter:
        run()
    return counter.count


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
