"""B8: Finn et al.'s Omniglot MAML setting, the torch.func peer (vmap over tasks), and the case at a tiny size."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from conml.benchmarks.gates import FLOAT64_TOLERANCE, agreement_gate_name, maml_gates, relative_error
from conml.benchmarks.maml_peers import EXAMPLE_TORCH_FUNC, build, flat_meta_gradient
from conml.benchmarks.scale import BenchRun
from conml.benchmarks.setups import MAMLSetup, network, omniglot_setup, sine_setup, synthetic_batch
from conml.benchmarks.suite import run_suite
from tests.bench.test_bench_smoke import TINY

CPU = torch.device("cpu")
CONV4 = MAMLSetup(tasks=3, shots=1, inner_steps=2, inner_lr=0.1)


def test_omniglot_setup_is_finn_et_al_s():
    setup = omniglot_setup(tasks=32)
    assert (setup.ways, setup.shots, setup.queries, setup.tasks) == (5, 1, 1, 32)
    assert (setup.inner_steps, setup.inner_lr, setup.first_order, setup.channels) == (1, 0.4, False, 1)
    net = network(setup)
    assert net.embedding_size == 64 and net[0].in_channels == 1 and net[0].stride == (2, 2)
    batch = synthetic_batch(setup, CPU)
    assert batch.support.x.shape == batch.query.x.shape == (32, 5, 1, 28, 28)
    assert net(batch.support.x[0]).shape == (5, 5)
    assert setup.label == "omniglot 5w1s q1 B=32 28px 1ch Conv4-64 stride 2 1 steps 2nd-order"
    # The gate shrinks the net and the meta-batch but keeps 28 px (28 -> 14 -> 7 -> 4 -> 2).
    small = setup.gate_sized()
    assert (small.tasks, small.hidden, small.image_size, small.omniglot) == (3, 8, 28, True)


def test_other_setups_are_unchanged():
    assert MAMLSetup(tasks=4, shots=1).label == "5w1s q15 B=4 84px Conv4-32 5 steps 2nd-order"
    assert CONV4.channels == 3 and CONV4.gate_sized().image_size == 16
    assert synthetic_batch(CONV4.gate_sized(), CPU).support.x.shape == (3, 5, 3, 16, 16)


@pytest.mark.parametrize(
    "setup",
    [omniglot_setup(tasks=32), replace(omniglot_setup(tasks=32), first_order=True), CONV4, sine_setup(tasks=32)],
    ids=["omniglot", "omniglot-fomaml", "conv4-2-steps", "sine"],
)
def test_torch_func_peer_computes_the_per_task_loop_s_meta_gradient(setup):
    small = setup.gate_sized()
    net, batch = network(small).double(), synthetic_batch(small, CPU, torch.float64)
    reference = flat_meta_gradient(build("per-task loop", net, small), batch)
    value = flat_meta_gradient(build("torch.func vmap", net, small), batch)
    assert relative_error(value, reference) <= FLOAT64_TOLERANCE


def test_torch_func_peer_refuses_what_it_does_not_implement():
    with pytest.raises(ValueError, match="plain MAML"):
        build("torch.func vmap", network(CONV4), replace(CONV4, conml=True))
    tracking = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten())
    with pytest.raises(ValueError, match="running statistics"):
        build("torch.func vmap", tracking, CONV4)


def test_an_optional_peer_s_gate_does_not_block():
    gates = maml_gates(CONV4, ["torch.func vmap"], (EXAMPLE_TORCH_FUNC,))
    optional = next(g for g in gates if g.name == agreement_gate_name(EXAMPLE_TORCH_FUNC))
    assert not optional.blocking and all(g.blocking for g in gates if g is not optional)


def test_b8_runs_at_a_tiny_size():
    plain, with_conml = run_suite(BenchRun(TINY, CPU), ["B8"], None)
    assert plain.passed and with_conml.passed
    assert plain.config.startswith("omniglot 5w1s q1 B=3 28px 1ch")
    assert {"project", "per-task loop", "torch.func vmap"} <= set(plain.timings)
    # The example's own BatchNorm is timed only where vmap differentiates it correctly.
    example_gate = next(g for g in plain.gates if g.name == agreement_gate_name(EXAMPLE_TORCH_FUNC))
    assert (EXAMPLE_TORCH_FUNC in plain.timings) == example_gate.passed
    assert set(with_conml.timings) == {"MAML", "MAML + ConML"} and with_conml.config.endswith("+ConML")
