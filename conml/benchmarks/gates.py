"""Correctness gates: a benchmark's timings count only if its implementations compute the same thing.

MAML gates run the case's algorithm on a small size in float64 on the CPU, with BatchNorm (which
catches the vmap + BatchNorm second-order error), and compare every implementation's
meta-gradient with the per-task reference loop; a central finite difference along a random
direction checks the reference itself. On a GPU the float32 device result of each project variant
is checked against the float64 CPU one.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from conml.benchmarks.maml_peers import PerTaskLoopMAML, ProjectMAML, build, flat_meta_gradient
from conml.benchmarks.setups import MAMLSetup, network, synthetic_batch
from conml.episodes import EpisodeBatch
from conml.performance import PerformanceSettings, Precision, apply_backend_flags

# float64 implementations of the same algorithm agree to rounding (measured: <= 2e-15).
FLOAT64_TOLERANCE = 1e-12
FINITE_DIFFERENCE_TOLERANCE = 1e-5
# Against float64: IEEE float32 as the reference plan asks; TF32 (10-bit mantissa) and bf16
# (8-bit) by their unit roundoff compounded through the inner loop (not yet measured on a GPU).
DEVICE_TOLERANCE = {Precision.float32: 1e-4, Precision.tf32: 2e-2, Precision.bf16: 1e-1}


@dataclass
class GateResult:
    """One comparison: `error` is max |a - b| / max |b| over all meta-gradient entries."""

    name: str
    error: float
    tolerance: float
    # A failed blocking gate voids the whole configuration; a failed optional one only the
    # variant it checks (a faster setting that is not accurate enough).
    blocking: bool = True

    @property
    def passed(self) -> bool:
        return self.error <= self.tolerance

    def as_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}

    def __str__(self) -> str:
        return f"{self.name}: {'pass' if self.passed else 'FAIL'} ({self.error:.1e} <= {self.tolerance:.0e})"


def relative_error(value: Tensor, reference: Tensor) -> float:
    return ((value - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item()


def agreement_gate_name(implementation: str) -> str:
    return f"{implementation} = reference (float64)"


def maml_gates(setup: MAMLSetup, peers: list[str], optional_peers: tuple[str, ...] = ()) -> list[GateResult]:
    """float64 CPU meta-gradients of the project and `peers` against the per-task reference.

    A failed gate of one of `optional_peers` voids only that peer's timing, not the configuration.
    """
    small = setup.gate_sized()
    net = network(small).double()
    batch = synthetic_batch(small, torch.device("cpu"), torch.float64)
    reference = flat_meta_gradient(build("per-task loop", net, small), batch)
    # A first-order meta-gradient is not the gradient of the meta-loss, so only the agreement counts.
    results = (
        [] if small.first_order else [finite_difference_gate(build("per-task loop", net, small), batch, reference)]
    )
    for name in ["project", *peers, *optional_peers]:
        if name != "per-task loop":
            error = relative_error(flat_meta_gradient(build(name, net, small), batch), reference)
            blocking = name not in optional_peers
            results.append(GateResult(agreement_gate_name(name), error, FLOAT64_TOLERANCE, blocking))
    return results


def finite_difference_gate(
    implementation: PerTaskLoopMAML, batch: EpisodeBatch, gradient: Tensor, step: float = 1e-8
) -> GateResult:
    """<gradient, v> against (L(theta + h v) - L(theta - h v)) / 2h along a unit direction v.

    v leans on the gradient so that <gradient, v> is large against rounding in L. The step is tiny
    because the MAML loss jumps wherever a ReLU or max-pool switches inside the inner loop (the
    inner gradient is discontinuous there); a larger step crosses such switches.
    """
    params = list(implementation.module.parameters())
    noise = torch.randn(gradient.shape, generator=torch.Generator().manual_seed(1), dtype=gradient.dtype)
    direction = gradient / gradient.norm() + noise / noise.norm()
    direction /= direction.norm()

    def loss_at(offset: float) -> float:
        originals = [p.detach().clone() for p in params]
        with torch.no_grad():
            start = 0
            for p in params:
                p.add_(offset * direction[start : start + p.numel()].view_as(p))
                start += p.numel()
        value = implementation.loss(batch).item()
        with torch.no_grad():
            for p, original in zip(params, originals):
                p.copy_(original)
        return value

    numeric = (loss_at(step) - loss_at(-step)) / (2 * step)
    analytic = (gradient @ direction).item()
    error = abs(numeric - analytic) / max(abs(analytic), 1e-30)
    return GateResult("reference = finite differences (float64)", error, FINITE_DIFFERENCE_TOLERANCE)


def device_gate(setup: MAMLSetup, device: torch.device, settings: PerformanceSettings, blocking: bool) -> GateResult:
    """The project's meta-gradient on `device` under `settings` against its float64 CPU value."""
    small = setup.gate_sized()
    net = network(small)
    on_device = ProjectMAML(copy.deepcopy(net).to(device), small, settings)
    reference = flat_meta_gradient(
        ProjectMAML(net.double(), small), synthetic_batch(small, torch.device("cpu"), torch.float64)
    )
    apply_backend_flags(settings, device)
    value = flat_meta_gradient(on_device, synthetic_batch(small, device))
    error = relative_error(value.double().cpu(), reference)
    return GateResult(
        f"project on {device.type}, {settings_label(settings)} = float64 CPU",
        error,
        DEVICE_TOLERANCE[settings.precision],
        blocking,
    )


def settings_label(settings: PerformanceSettings) -> str:
    return settings.precision.value + (" channels_last" if settings.channels_last else "")
