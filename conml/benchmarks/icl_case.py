"""B5: an in-context-learning training step (Garg et al. linear regression) against an eager fp32 loop.

The peer is the training loop of dtsip/in-context-learning written plainly: prompts drawn on the
CPU and copied over, the model in float32, and the loss read back every step (`.item()`, a host
sync). It runs the project's GPT-2 module (fused attention), so it is a conservative peer: the
reference loop uses Hugging Face's GPT2Model with eager attention. The project draws prompts on
the device, runs bf16 autocast on a GPU (`InContextLearner(mixed_precision=True)`) and never syncs.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from conml.benchmarks.gates import GateResult
from conml.benchmarks.results import CaseResult
from conml.benchmarks.scale import BenchRun
from conml.benchmarks.timing import Variant, measure
from conml.data.functions import FunctionTasks
from conml.data.functions.families import LinearFunctions
from conml.episodes import EpisodeBatch, Tasks
from conml.learners.icl import InContextLearner, interleave
from conml.nets.gpt2 import GPT2
from conml.objective import ConMLObjective, ConMLSettings
from conml.task_kind import REGRESSION

DIMS = 20
HEADS = 8
# The project's prefix loss against the peer's on the same prompts: float32 rounding on a CPU,
# bf16 autocast on a GPU.
LOSS_TOLERANCE = {"cpu": 1e-5, "cuda": 3e-2}


def _gpt2(run: BenchRun) -> GPT2:
    torch.manual_seed(0)
    scale = run.scale
    return GPT2(DIMS, 1, width=scale.gpt2_width, depth=scale.gpt2_layers, heads=HEADS, max_positions=2 * scale.icl_points + 1)


def eager_loss(net: GPT2, xs: Tensor, ys: Tensor) -> Tensor:
    """dtsip's objective: squared error of the predictions read at the x tokens of the whole prompt."""
    tokens = interleave(Tasks(xs, ys.unsqueeze(-1)))
    return (net(tokens)[:, ::2, 0] - ys).square().mean()


def _project_step(net: GPT2, run: BenchRun):
    scale = run.scale
    learner = InContextLearner(net, REGRESSION, mixed_precision=True)
    objective = ConMLObjective(ConMLSettings(enabled=False))
    source = FunctionTasks(LinearFunctions(), DIMS, scale.icl_points, None, 1, scale.icl_batch, str(run.device))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    step = [0]

    def iteration() -> None:
        batch = source.sample("train", step[0] * scale.icl_batch, scale.icl_batch)
        optimizer.zero_grad(set_to_none=True)
        objective(learner, batch).total.backward()
        optimizer.step()
        step[0] += 1

    return iteration


def _eager_step(net: GPT2, run: BenchRun):
    scale = run.scale
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)

    def iteration() -> float:
        xs = torch.randn(scale.icl_batch, scale.icl_points, DIMS, generator=generator)
        w = torch.randn(scale.icl_batch, DIMS, 1, generator=generator)
        ys = (xs @ w)[..., 0]
        loss = eager_loss(net, xs.to(run.device), ys.to(run.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach().item()

    return iteration


def loss_gate(run: BenchRun) -> GateResult:
    """The project learner's episodic loss equals the peer's on the same prompts."""
    net = _gpt2(run).to(run.device)
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(4, run.scale.icl_points, DIMS, generator=g)
    ys = (xs @ torch.randn(4, DIMS, 1, generator=g))[..., 0]
    xs, ys = xs.to(run.device), ys.to(run.device)
    with torch.no_grad():
        reference = eager_loss(net, xs, ys).item()
        batch = EpisodeBatch(Tasks(xs[:, :-1], ys[:, :-1, None]), Tasks(xs[:, -1:], ys[:, -1:, None]))
        learner = InContextLearner(net, REGRESSION, mixed_precision=True)
        value = ConMLObjective(ConMLSettings(enabled=False))(learner, batch).total.item()
    return GateResult("project prefix loss = eager fp32 loss", abs(value - reference) / abs(reference), LOSS_TOLERANCE[run.device.type])


def b5(run: BenchRun) -> list[CaseResult]:
    scale = run.scale
    label = f"GPT-2 {scale.gpt2_layers}L/{HEADS}H/{scale.gpt2_width}d, B={scale.icl_batch}, linear regression d={DIMS}, {scale.icl_points} points"
    result = CaseResult("B5", "in-context learning training step", label, "project", [loss_gate(run)])
    if not result.passed:
        return [result]
    net = _gpt2(run).to(run.device)
    variants = [
        Variant("project", _project_step(copy.deepcopy(net), run)),
        Variant("eager fp32 loop (dtsip-style)", _eager_step(net, run)),
    ]
    result.timings, failures = measure(variants, run)
    result.notes += failures
    if run.device.type == "cpu":
        result.notes.append("on a CPU both run float32 (the project's bf16 autocast is CUDA-only)")
    return [result]
