"""The benchmark correctness gates pass on correct implementations and fail on wrong ones."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from conml.benchmarks.gates import FLOAT64_TOLERANCE, device_gate, finite_difference_gate, maml_gates, relative_error
from conml.benchmarks.maml_peers import STRICT_FLOAT32, build, flat_meta_gradient
from conml.benchmarks.setups import MAMLSetup, network, omniglot_setup, synthetic_batch

SETUP = MAMLSetup(tasks=3, shots=1, inner_steps=2, inner_lr=0.1)


@pytest.mark.parametrize(
    "setup",
    [
        SETUP,
        replace(SETUP, shots=2),
        replace(SETUP, first_order=True),
        replace(SETUP, conml=True),
        omniglot_setup(tasks=32),
    ],
    ids=["maml", "maml-2shot", "fomaml", "conml", "omniglot"],
)
def test_gates_pass_for_every_implementation(setup):
    peers = [] if setup.conml else ["higher", "per-task loop", "torch.func vmap"]
    results = maml_gates(setup, peers)
    assert all(r.passed for r in results), [str(r) for r in results]
    names = " ".join(r.name for r in results)
    assert "project" in names and ("higher" in names or setup.conml)
    assert ("finite differences" in names) != setup.first_order


def _gate_inputs(setup: MAMLSetup):
    small = setup.gate_sized()
    return small, network(small).double(), synthetic_batch(small, torch.device("cpu"), torch.float64)


def test_agreement_gate_fails_when_second_order_terms_are_missing():
    """First-order MAML set against the second-order reference: the gate must notice."""
    small, net, batch = _gate_inputs(SETUP)
    reference = flat_meta_gradient(build("per-task loop", net, small), batch)
    first_order = flat_meta_gradient(build("project", net, replace(small, first_order=True)), batch)
    assert relative_error(first_order, reference) > 1e3 * FLOAT64_TOLERANCE


def test_finite_difference_gate_fails_for_a_wrong_gradient():
    small, net, batch = _gate_inputs(SETUP)
    reference = build("per-task loop", net, small)
    gradient = flat_meta_gradient(reference, batch)
    assert finite_difference_gate(reference, batch, gradient).passed
    assert not finite_difference_gate(reference, batch, 1.1 * gradient).passed


def test_gate_size_keeps_the_algorithm():
    small = replace(SETUP, tasks=32, image_size=84, hidden=64, first_order=True, conml=True).gate_sized()
    assert (small.tasks, small.image_size, small.hidden) == (3, 16, 8)
    assert small.first_order and small.conml and small.inner_steps == SETUP.inner_steps
    assert small.inner_lr == torch.tensor(0.1, dtype=torch.float32).item()


def test_device_gate_compares_float32_with_float64():
    gate = device_gate(SETUP, torch.device("cpu"), STRICT_FLOAT32, blocking=True)
    assert gate.passed and 0 < gate.error < 1e-4
