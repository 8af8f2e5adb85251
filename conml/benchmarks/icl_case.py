"""B5: an in-context-learning training step (Garg et al. linear regression) against an eager fp32 loop.

The peer is the training loop of dtsip/in-context-learning written plainly: prompts drawn on the
CPU and copied over, the model in float32, and the loss read back every step (`.item()`, a host
sync). It runs the project's GPT-2 module (fused attention), so it is a conservative peer: the
reference loop uses Hugging Face's GPT2Model with eager attention. The project draws prompts on
the device, runs bf16 autocast on a GPU (`InContextLearner(mixed_precision=True)`) and never syncs.

B5b: ConML's cost over the same in-context learner (conml=icl: kappa = the first floor(n/2)
pairs, phi = sigmoid of the squared difference, lambda = 0.02), target at most 1.15x a plain step.
The project reads L_e, e* and e^kappa off one pass (reader tokens, `conml.learners.icl`); the
peer is the computation it replaced: the whole prompt with its probe in one pass, the half prompt
with its probe in a second.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import Tensor

from conml.benchmarks.gates import GateResult, relative_error
from conml.benchmarks.results import CaseResult, Target
from conml.benchmarks.scale import BenchRun
from conml.benchmarks.timing import Variant, measure
from conml.data.functions import FunctionTasks
from conml.data.functions.families import LinearFunctions
from conml.distances import Distance
from conml.episodes import EpisodeBatch, Tasks
from conml.learners.base import Adaptation
from conml.learners.icl import InContextLearner, interleave
from conml.nets.gpt2 import GPT2
from conml.objective import ConMLObjective, ConMLSettings, SubsetStrategy
from conml.task_kind import REGRESSION
from conml.training_step import meta_gradient, optimizer_step

DIMS = 20
HEADS = 8
# The project's prefix loss against the peer's on the same prompts: float32 rounding on a CPU,
# bf16 autocast on a GPU.
LOSS_TOLERANCE = {"cpu": 1e-5, "cuda": 3e-2}

# configs/conml/icl.yaml
CONML_ICL = ConMLSettings(lam=0.02, phi=Distance.sigmoid_squared, subset=SubsetStrategy.prefix, subset_fraction=0.5)
# Table 5's toy scale (configs/experiment/icl/toy.yaml): d = 5 with 11 points (LR, SLR); B5b also times the scale's prompt length.
TOY_DIMS, TOY_POINTS = 5, 11
CONML_LIMIT = 1.15  # ConML-ICL step time over a plain ICL step
# One pass against two: the same float64 loss and meta-gradient but for rounding (measured ~1e-16).
FLOAT64_TOLERANCE = 1e-10
PLAIN, ONE_PASS, TWO_PASSES = "plain ICL", "ConML-ICL, one pass", "ConML-ICL, two passes (before)"


def _gpt2(run: BenchRun) -> GPT2:
    torch.manual_seed(0)
    scale = run.scale
    return GPT2(
        in_features=DIMS,
        out_features=1,
        width=scale.gpt2_width,
        depth=scale.gpt2_layers,
        heads=HEADS,
        max_positions=2 * scale.icl_points + 1,
    )


def prompts(dims: int, points: int, meta_batch_size: int, device: str) -> FunctionTasks:
    """Linear-regression prompts of `points` points in `dims` dimensions, at full size from the first step (no
    curriculum), one query, drawn on `device` from seed 0."""
    return FunctionTasks(
        LinearFunctions(),
        dims=dims,
        points=points,
        curriculum=None,
        queries=1,
        meta_batch_size=meta_batch_size,
        device=device,
        seed=0,
    )


def eager_loss(net: GPT2, xs: Tensor, ys: Tensor) -> Tensor:
    """dtsip's objective: squared error of the predictions read at the x tokens of the whole prompt."""
    tokens = interleave(Tasks(xs, ys.unsqueeze(-1)))
    return (net(tokens)[:, ::2, 0] - ys).square().mean()


def _project_step(net: GPT2, run: BenchRun):
    scale = run.scale
    learner = InContextLearner(net, REGRESSION, mixed_precision=True)
    objective = ConMLObjective(ConMLSettings(enabled=False))
    source = prompts(DIMS, scale.icl_points, scale.icl_batch, str(run.device))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    step = [0]

    def iteration() -> None:
        batch = source.sample("train", step[0] * scale.icl_batch, scale.icl_batch)
        meta_gradient(objective, learner, batch)  # the trainer's step (conml/training_step.py)
        optimizer_step(learner, optimizer, None, None)
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
    return GateResult(
        "project prefix loss = eager fp32 loss",
        abs(value - reference) / abs(reference),
        LOSS_TOLERANCE[run.device.type],
    )


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


def two_pass_loss(learner: InContextLearner, objective: ConMLObjective, batch: EpisodeBatch) -> Tensor:
    """ConML-ICL as the project computed it before reader tokens: the whole prompt and the probe in one
    causal pass (L_e and e*), then the prompt's first half and the probe in a second (e^kappa)."""
    whole = batch.whole
    predictions, e_star = learner.prefix_predictions(whole, batch.probe)
    e_kappa = learner.represent(learner.adapt(objective.subsets(batch)[0], Adaptation.meta_train), batch)
    contrastive, _, _ = objective.contrastive(e_star, [e_kappa])
    return learner.kind.loss(predictions, whole.y).mean() + contrastive


def _icl_step(
    net: GPT2, run: BenchRun, dims: int, points: int, loss: Callable[[InContextLearner, EpisodeBatch], Tensor]
) -> Callable[[], None]:
    """One training step (sample on the device, loss, backward, Adam) with `loss(learner, batch)`."""
    learner = InContextLearner(net, REGRESSION, mixed_precision=True)
    batch_size = run.scale.icl_batch
    source = prompts(dims, points, batch_size, str(run.device))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    step = [0]

    def iteration() -> None:
        batch = source.sample("train", step[0] * batch_size, batch_size)
        optimizer.zero_grad(set_to_none=True)
        loss(learner, batch).backward()
        optimizer.step()
        step[0] += 1

    return iteration


def one_pass_gate(run: BenchRun, dims: int, points: int) -> GateResult:
    """float64 on the CPU: the one-pass ConML-ICL loss and meta-gradient equal the two-pass ones."""
    torch.manual_seed(0)
    net = GPT2(in_features=dims, out_features=1, width=16, depth=2, heads=2, max_positions=2 * points + 1).double()
    with torch.no_grad():  # large weights, so that e* and e^kappa depend on the prompt and ConML's gradient counts
        for p in net.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.5)
    learner, objective = InContextLearner(net, REGRESSION, mixed_precision=True), ConMLObjective(CONML_ICL)
    batch = prompts(dims, points, 4, "cpu").sample("train", 0, 4)
    batch = EpisodeBatch(
        *(Tasks(t.x.double(), t.y.double()) for t in (batch.support, batch.query)), batch.probe.double()
    )
    values = []
    for loss in (objective(learner, batch).total, two_pass_loss(learner, objective, batch)):
        values.append(
            torch.cat([loss.detach()[None], *(g.flatten() for g in torch.autograd.grad(loss, list(net.parameters())))])
        )
    return GateResult(
        "one-pass ConML loss and meta-gradient = two passes (float64)",
        relative_error(values[0], values[1]),
        FLOAT64_TOLERANCE,
    )


def b5b(run: BenchRun) -> list[CaseResult]:
    """ConML-ICL's cost over the same ICL step, at Table 5's toy prompt length and the scale's."""
    scale, results = run.scale, []
    for dims, points in dict.fromkeys([(TOY_DIMS, TOY_POINTS), (TOY_DIMS, scale.icl_points)]):
        label = f"GPT-2 {scale.gpt2_layers}L/{HEADS}H/{scale.gpt2_width}d, B={scale.icl_batch}, linear regression d={dims}, {points} points"
        result = CaseResult(
            "B5b",
            "ConML-ICL (K=1, kappa = first half) over plain ICL",
            label,
            PLAIN,
            [one_pass_gate(run, dims, points)],
        )
        results.append(result)
        if not result.passed:
            continue
        torch.manual_seed(0)
        net = GPT2(
            in_features=dims,
            out_features=1,
            width=scale.gpt2_width,
            depth=scale.gpt2_layers,
            heads=HEADS,
            max_positions=2 * points + 1,
        ).to(run.device)
        plain, conml = ConMLObjective(ConMLSettings(enabled=False)), ConMLObjective(CONML_ICL)
        variants = [
            Variant(
                PLAIN,
                _icl_step(copy.deepcopy(net), run, dims, points, lambda learner, batch: plain(learner, batch).total),
            ),
            Variant(
                ONE_PASS,
                _icl_step(copy.deepcopy(net), run, dims, points, lambda learner, batch: conml(learner, batch).total),
            ),
            Variant(
                TWO_PASSES,
                _icl_step(
                    copy.deepcopy(net), run, dims, points, lambda learner, batch: two_pass_loss(learner, conml, batch)
                ),
            ),
        ]
        result.timings, failures = measure(variants, run)
        result.notes += failures
        ratio = result.time_ratio(ONE_PASS)
        if ratio is not None:
            result.targets.append(Target("ConML-ICL step time over a plain ICL step", ratio, CONML_LIMIT, unit="x"))
            tokens = f"{2 * points - 1} tokens per prompt plain, {2 * points + 2} with ConML in one pass, {2 * points + 1} + {2 * (points // 2) + 1} in two"
            result.notes.append(tokens)
    return results
