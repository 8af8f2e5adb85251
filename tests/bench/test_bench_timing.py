"""Timing helpers: interleaved measurement, op counts, CPU peak memory."""

from __future__ import annotations

import torch

from conml.benchmarks.scale import SMALL, BenchRun
from conml.benchmarks.timing import Variant, _cpu_peak_memory_mb, count_ops, measure

CPU = torch.device("cpu")


def test_count_ops_counts_kernels_not_views():
    x = torch.randn(4, 4)

    def run():
        y = x.view(16).reshape(2, 8).t()  # views only
        return (y + 1).mul(2).sum()  # three kernels

    assert count_ops(run) == 3


def test_measure_times_every_variant_and_respects_its_budget():
    calls = {"a": 0, "b": 0}

    def make(name):
        def run():
            calls[name] += 1
            torch.randn(64, 64) @ torch.randn(64, 64)

        return run

    scale = SMALL.__class__(**{**SMALL.__dict__, "warmup": 1, "repeats": 4, "max_seconds": 100.0})
    timings, failures = measure([Variant("a", make("a")), Variant("b", make("b"), profile=False)], BenchRun(scale, CPU))
    assert failures == []
    assert timings["a"].iterations == timings["b"].iterations == 4
    assert timings["a"].ops and timings["a"].ops >= 3 and timings["b"].ops is None
    assert timings["a"].p10_ms <= timings["a"].median_ms <= timings["a"].p90_ms
    assert timings["a"].peak_memory_mb is None  # CPU memory is profiled only when asked
    assert calls["a"] == 1 + 4 + 1  # warm-up, timed repeats, op count

    over_budget = SMALL.__class__(**{**SMALL.__dict__, "warmup": 0, "repeats": 50, "max_seconds": 0.0})
    assert measure([Variant("a", make("a"))], BenchRun(over_budget, CPU))[0]["a"].iterations == 3


def test_cpu_peak_memory_sees_a_temporary_tensor():
    def run():
        big = torch.ones(1024, 1024)  # 4 MiB, freed at return
        return big.sum()

    assert 3.9 <= _cpu_peak_memory_mb(run) <= 8.5
