"""Every GPU speed setting against its correctness gate, and runs that use only the settings that pass.

TF32, bf16 (also the in-context learner's `learner.mixed_precision`) and channels_last are gated by `conml.benchmarks.gates.device_gate` (the setting's
second-order MAML meta-gradient against float64 on the CPU); a replayed CUDA graph must give the
meta-gradient of the same step run eagerly. A setting whose gate fails on this device is switched
off, with a one-line notice, in everything the check runs after it: never silently wrong.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import dataclass, replace

import torch
from omegaconf import DictConfig, open_dict

from conml.benchmarks.gates import device_gate, relative_error
from conml.benchmarks.maml_peers import STRICT_FLOAT32, ProjectMAML, flat_meta_gradient
from conml.benchmarks.setups import MAMLSetup, network, synthetic_batch
from conml.performance import PerformanceSettings, Precision

# The configuration the gates shrink (`MAMLSetup.gate_sized`): B1b's second-order Conv-4 MAML.
GATED = MAMLSetup(tasks=32, shots=1)
# A graph replays the eagerly checked kernels: only rounding-level differences are allowed.
GRAPH_TOLERANCE = 1e-5
CANDIDATES = {
    "float32": STRICT_FLOAT32,
    "tf32": PerformanceSettings(precision=Precision.tf32, cudnn_benchmark=True),
    "bf16": PerformanceSettings(precision=Precision.bf16, cudnn_benchmark=True),
    "channels_last": PerformanceSettings(precision=Precision.tf32, channels_last=True, cudnn_benchmark=True),
}


@dataclass
class Verdicts:
    """Which settings passed on this device: {'tf32': True, ...}; absent means not checked (not a CUDA device)."""

    passed: dict[str, bool]

    def gate(self, settings: PerformanceSettings) -> tuple[PerformanceSettings, list[str]]:
        """`settings` with every failed setting switched off, and one notice per switch."""
        notices = []
        if settings.precision != Precision.float32 and self.passed.get(settings.precision.value) is False:
            fallback = (
                Precision.tf32
                if settings.precision == Precision.bf16 and self.passed.get("tf32")
                else Precision.float32
            )
            notices.append(
                f"performance.precision={settings.precision.value} failed its gate on this device: switched to {fallback.value}"
            )
            settings = replace(settings, precision=fallback)
        if settings.channels_last and self.passed.get("channels_last") is False:
            notices.append("performance.channels_last=true failed its gate on this device: switched off")
            settings = replace(settings, channels_last=False)
        return settings, notices

    def gate_learner(self, cfg: DictConfig) -> list[str]:
        """The in-context learner's own bf16 autocast (`learner.mixed_precision`) follows the bf16 gate."""
        if not cfg.learner.get("mixed_precision") or self.passed.get("bf16") is not False:
            return []
        with open_dict(cfg):
            cfg.learner.mixed_precision = False
        return ["learner.mixed_precision=true (bf16 autocast) failed the bf16 gate on this device: switched off"]


def check_settings(device: torch.device) -> tuple[list[dict], Verdicts]:
    """One row per setting (error, tolerance, verdict) and the verdicts the rest of the check obeys."""
    if device.type != "cuda":
        gate = device_gate(GATED, device, CANDIDATES["float32"], blocking=True)
        rows = [_row("float32", gate.error, gate.tolerance, gate.passed)]
        rows += [
            {"setting": name, "error": None, "tolerance": None, "verdict": "not applicable: acts on CUDA only"}
            for name in ("tf32", "bf16", "channels_last", "cuda_graph")
        ]
        return rows, Verdicts({})
    rows, passed = [], {}
    for name, settings in CANDIDATES.items():
        gate = device_gate(GATED, device, settings, blocking=True)
        passed[name] = gate.passed
        rows.append(_row(name, gate.error, gate.tolerance, gate.passed))
    error, failure = isolated_graph_error(device)
    passed["cuda_graph"] = error is not None and error <= GRAPH_TOLERANCE
    row = _row("cuda_graph", error, GRAPH_TOLERANCE, passed["cuda_graph"])
    rows.append(row if failure is None else row | {"verdict": f"FAIL: {failure}"})
    return rows, Verdicts(passed)


def isolated_graph_error(device: torch.device, timeout: float = 180.0) -> tuple[float | None, str | None]:
    """`graph_error` in a child process: a capture that fails can leave this process's CUDA state unusable.

    Capturing second-order MAML is new ground; (error, None), or (None, why it failed).
    """
    script = f"import torch; from conml.gpu_check.settings import graph_error; print(graph_error(torch.device({str(device)!r})))"
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=os.environ | {"PYTHONPATH": _paths()},
        )
    except subprocess.TimeoutExpired:
        return None, f"no result within {timeout:.0f} s"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no message)"]
        return None, f"capture failed: {lines[-1][:160]}"
    return float(done.stdout.strip().splitlines()[-1]), None


def _paths() -> str:
    """This process's import path, so the child finds the same packages (the project, a wheel folder)."""
    return os.pathsep.join(p for p in sys.path if p)


def graph_error(device: torch.device) -> float:
    """The meta-gradient of a captured, replayed backward pass against the same pass run eagerly."""
    small = GATED.gate_sized()
    net = network(small).to(device)
    batch = synthetic_batch(small, device)
    eager = flat_meta_gradient(ProjectMAML(copy.deepcopy(net), small), batch)
    graphed = ProjectMAML(copy.deepcopy(net), small)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm up outside the graph (cuDNN autotuning, lazy initialisation)
        for _ in range(3):
            graphed.module.zero_grad(set_to_none=True)
            graphed.backward(batch)
    torch.cuda.current_stream(device).wait_stream(side)
    graphed.module.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        graphed.backward(batch)
    graph.replay()
    torch.cuda.synchronize(device)
    replayed = torch.cat([p.grad.flatten() for p in graphed.module.parameters()])
    return relative_error(replayed.double().cpu(), eager.double().cpu())


def _row(name: str, error: float, tolerance: float, passed: bool) -> dict:
    failed = "FAIL: float32 itself is wrong here, nothing can be trusted" if name == "float32" else "FAIL: switched off"
    return {"setting": name, "error": error, "tolerance": tolerance, "verdict": "pass" if passed else failed}
