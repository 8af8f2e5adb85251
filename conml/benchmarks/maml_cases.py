"""B1-B3, B8: Conv-4 MAML, FOMAML and ConML meta-iterations against `higher` and a per-task loop.

On a GPU, B1b (B=32) also times the project under the settings of `conml.performance` (TF32,
channels_last, bf16) and as a replayed CUDA graph, each after its own gate against float64. B8 is
Finn et al.'s Omniglot MAML, also against the torch.func pattern (vmap over tasks).
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import replace

from conml.benchmarks.gates import agreement_gate_name, device_gate, maml_gates, settings_label
from conml.benchmarks.maml_peers import (
    EXAMPLE_TORCH_FUNC,
    STRICT_FLOAT32,
    ProjectMAML,
    build,
    graphed_meta_iteration,
    meta_iteration,
)
from conml.benchmarks.results import CaseResult
from conml.benchmarks.scale import BenchRun, Scale
from conml.benchmarks.setups import MAMLSetup, network, omniglot_setup, sine_setup, synthetic_batch
from conml.benchmarks.timing import Variant, measure
from conml.performance import PerformanceSettings, Precision

# The faster settings timed on a GPU, each against its own gate (shapes are fixed: autotune).
GPU_SETTINGS = (
    PerformanceSettings(precision=Precision.tf32, cudnn_benchmark=True),
    PerformanceSettings(precision=Precision.tf32, channels_last=True, cudnn_benchmark=True),
    PerformanceSettings(precision=Precision.bf16, cudnn_benchmark=True),
)


def available_peers(notes: list[str]) -> list[str]:
    """`higher` when it is installed (it is a dev dependency), and the per-task loop."""
    if importlib.util.find_spec("higher") is None:
        notes.append("higher is not installed (uv sync installs the dev group); it was left out")
        return ["per-task loop"]
    return ["higher", "per-task loop"]


def maml_setups(scale: Scale, tasks: int, shots: tuple[int, ...], **changes) -> list[MAMLSetup]:
    base = MAMLSetup(
        tasks=tasks, shots=1, queries=scale.queries, image_size=scale.image_size, inner_steps=scale.inner_steps
    )
    return [replace(base, shots=s, **changes) for s in shots]


def compare_with_peers(
    case: str,
    title: str,
    setup: MAMLSetup,
    run: BenchRun,
    gpu_options: bool = False,
    extra_peers: tuple[str, ...] = (),
    optional_peers: tuple[str, ...] = (),
) -> CaseResult:
    """The project's meta-iteration against every available peer and `extra_peers` on the same batch
    and weights; each of `optional_peers` is timed only if its own gate passes."""
    device = run.device
    notes: list[str] = []
    peers = available_peers(notes) + list(extra_peers)
    result = CaseResult(case, title, setup.label, "project", maml_gates(setup, peers, optional_peers), notes=notes)
    options = gpu_options and device.type == "cuda"
    if options:
        result.gates.append(device_gate(setup, device, STRICT_FLOAT32, blocking=True))
    if not result.passed:
        return result
    failed = {gate.name for gate in result.gates if not gate.passed}
    for name in optional_peers:
        if agreement_gate_name(name) in failed:
            result.notes.append(f"{name} left out: its meta-gradient is not the reference's")
        else:
            peers.append(name)
    net, batch = network(setup).to(device), synthetic_batch(setup, device)
    variants = [Variant("project", meta_iteration(ProjectMAML(copy.deepcopy(net), setup), batch))]
    variants += [Variant(peer, meta_iteration(build(peer, net, setup), batch)) for peer in peers]
    if options:
        variants += _gpu_variants(net, setup, batch, result)
    result.timings, failures = measure(variants, run)
    result.notes += failures
    return result


def _gpu_variants(net, setup: MAMLSetup, batch, result: CaseResult) -> list[Variant]:
    """The project under each faster setting whose gate passes, and as a replayed CUDA graph."""
    variants, accurate = [], []
    for settings in GPU_SETTINGS:
        gate = device_gate(setup, batch.support.x.device, settings, blocking=False)
        result.gates.append(gate)
        if not gate.passed:
            result.notes.append(f"project {settings_label(settings)} left out: its gate failed")
            continue
        accurate.append(settings)
        variants.append(
            Variant(
                f"project {settings_label(settings)}",
                meta_iteration(ProjectMAML(copy.deepcopy(net), setup, settings), batch, settings),
            )
        )
    if not accurate:
        return variants
    graph_settings = accurate[0]  # the graph replays the kernels that setting's gate checked
    try:
        replay = graphed_meta_iteration(ProjectMAML(copy.deepcopy(net), setup, graph_settings), batch, graph_settings)
        variants.append(Variant(f"project {settings_label(graph_settings)} CUDA graph", replay, profile=False))
    except RuntimeError as error:  # capture is new ground for second-order MAML: report, don't abort
        result.notes.append(f"CUDA-graph capture failed: {str(error).splitlines()[0]}")
    return variants


def conml_overhead(setup: MAMLSetup, run: BenchRun, case: str = "B3") -> CaseResult:
    """B3: the same learner with and without ConML's contrastive term (K = 1, kappa = support)."""
    device = run.device
    with_conml = replace(setup, conml=True)
    result = CaseResult(case, "ConML overhead over MAML", with_conml.label, "MAML", maml_gates(with_conml, []))
    if not result.passed:
        return result
    net, batch = network(setup).to(device), synthetic_batch(setup, device)
    variants = [
        Variant("MAML", meta_iteration(ProjectMAML(copy.deepcopy(net), setup), batch)),
        Variant("MAML + ConML", meta_iteration(ProjectMAML(copy.deepcopy(net), with_conml), batch)),
    ]
    result.timings, failures = measure(variants, run)
    result.notes += failures
    result.notes.append(
        f"ConML adapts once more per task, on support ∪ query ({setup.ways * (setup.shots + setup.queries)} examples "
        f"against {setup.ways * setup.shots} in the support set)"
    )
    return result


def b1(run: BenchRun) -> list[CaseResult]:
    """Second-order MAML at the small meta-batch (4)."""
    setups = maml_setups(run.scale, run.scale.meta_batches[0], run.scale.shots)
    return [compare_with_peers("B1", "MAML meta-iteration", s, run) for s in setups]


def b1b(run: BenchRun) -> list[CaseResult]:
    """Second-order MAML at ConML's meta-batch (32), plus the GPU settings; then the project's default
    experiment, sine waves with Finn et al.'s 1-40-40-1 MLP (configs/learner/maml.yaml: one step of 0.01)."""
    tasks = run.scale.meta_batches[1]
    results = [
        compare_with_peers("B1b", "MAML meta-iteration", s, run, gpu_options=True)
        for s in maml_setups(run.scale, tasks, run.scale.shots)
    ]
    return results + [compare_with_peers("B1b", "MAML meta-iteration", sine_setup(tasks), run)]


def b2(run: BenchRun) -> list[CaseResult]:
    """First-order MAML at meta-batch 32."""
    setups = maml_setups(run.scale, run.scale.meta_batches[1], run.scale.shots[:1], first_order=True)
    return [compare_with_peers("B2", "FOMAML meta-iteration", s, run) for s in setups]


def b3(run: BenchRun) -> list[CaseResult]:
    """ConML's cost over second-order MAML at meta-batch 32: in the training configuration of the
    project's miniImageNet MAML presets (configs/experiment/fewshot/maml.yaml: as many query as
    support images, one inner step of 0.5), then in B1b's."""
    scale, tasks = run.scale, run.scale.meta_batches[1]
    preset = [
        MAMLSetup(tasks=tasks, shots=s, queries=s, image_size=scale.image_size, inner_steps=1, inner_lr=0.5)
        for s in scale.conml_shots
    ]
    return [conml_overhead(s, run) for s in preset + maml_setups(scale, tasks, scale.shots[:1])]


def b8(run: BenchRun) -> list[CaseResult]:
    """Finn et al.'s 5-way 1-shot Omniglot MAML (one query per class while meta-training, one inner
    step of 0.4, B = 32, their stride-2 Conv-4 on 28 px) against the torch.func pattern of PyTorch's
    MAML-Omniglot example and a per-task loop; then ConML's cost over it. The same at every scale
    except B (the tests' tiny scale shrinks it)."""
    setup = omniglot_setup(run.scale.meta_batches[1])
    title = "Omniglot MAML meta-iteration"
    peers = ("torch.func vmap",)
    return [
        compare_with_peers("B8", title, setup, run, extra_peers=peers, optional_peers=(EXAMPLE_TORCH_FUNC,)),
        conml_overhead(setup, run, case="B8"),
    ]
