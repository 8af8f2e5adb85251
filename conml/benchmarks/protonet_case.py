"""B4: a ProtoNet meta-training step against the per-episode loop of learn2learn's protonet_miniimagenet.py.

The loop embeds one episode at a time with an ordinary Conv-4 (BatchNorm statistics of that
episode), averages class prototypes and back-propagates each episode's loss on its own; the
project embeds every episode of the meta-batch in one task-batched pass.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conml.benchmarks.gates import FLOAT64_TOLERANCE, GateResult, relative_error
from conml.benchmarks.results import CaseResult
from conml.benchmarks.scale import BenchRun
from conml.benchmarks.setups import MAMLSetup, synthetic_batch
from conml.benchmarks.timing import Variant, measure
from conml.episodes import EpisodeBatch
from conml.learners.protonet import ProtoNet
from conml.nets.conv import ConvNet
from conml.objective import ConMLObjective, ConMLSettings
from conml.task_kind import CLASSIFICATION
from conml.training_step import meta_gradient


class ProjectProtoNet:
    def __init__(self, net: nn.Module):
        self.module = ProtoNet(net, CLASSIFICATION, representation="prototypes")
        self.objective = ConMLObjective(ConMLSettings(enabled=False))

    def backward(self, batch: EpisodeBatch) -> None:
        """The trainer's meta-gradient (conml/training_step.py)."""
        meta_gradient(self.objective, self.module, batch)


class EpisodeLoopProtoNet:
    """learn2learn's recipe: embed the episode, class means of the support, negative squared distances."""

    def __init__(self, net: nn.Module, ways: int, shots: int):
        self.module, self.ways, self.shots = net, ways, shots

    def backward(self, batch: EpisodeBatch) -> None:
        s, q = batch.support, batch.query
        for t in range(batch.num_tasks):
            embeddings = self.module(torch.cat([s.x[t], q.x[t]]))
            support, queries = embeddings[: s.num_examples], embeddings[s.num_examples :]
            prototypes = support.view(self.ways, self.shots, -1).mean(1)  # support is class-major
            logits = -(queries.unsqueeze(1) - prototypes.unsqueeze(0)).pow(2).sum(-1)
            (F.cross_entropy(logits, q.y[t]) / batch.num_tasks).backward()


def _gradient(implementation, batch: EpisodeBatch) -> Tensor:
    implementation.module.zero_grad(set_to_none=True)
    implementation.backward(batch)
    return torch.cat([p.grad.flatten() for p in implementation.module.parameters()])


def _embedding_net(setup: MAMLSetup) -> ConvNet:
    torch.manual_seed(0)
    return ConvNet(
        in_channels=3,
        hidden=setup.hidden,
        blocks=4,
        out_features=None,
        image_size=setup.image_size,
        bn_eps=1e-3,
        stride=1,
        max_pool=True,
        spatial_mean=False,
    )


def _iteration(implementation, batch: EpisodeBatch):
    optimizer = torch.optim.Adam(implementation.module.parameters(), lr=1e-3)

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        implementation.backward(batch)
        optimizer.step()

    return run


def protonet_case(setup: MAMLSetup, run: BenchRun) -> CaseResult:
    small = replace(setup.gate_sized(), tasks=2, queries=2)
    net = _embedding_net(small).double()
    batch = synthetic_batch(small, torch.device("cpu"), torch.float64)
    error = relative_error(
        _gradient(ProjectProtoNet(copy.deepcopy(net)), batch),
        _gradient(EpisodeLoopProtoNet(net, small.ways, small.shots), batch),
    )
    gate = GateResult("project = per-episode loop (float64)", error, FLOAT64_TOLERANCE)
    label = f"{setup.ways}w{setup.shots}s q{setup.queries} B={setup.tasks} {setup.image_size}px Conv4-{setup.hidden}"
    result = CaseResult("B4", "ProtoNet meta-training step", label, "project", [gate])
    if not result.passed:
        return result
    net, batch = _embedding_net(setup).to(run.device), synthetic_batch(setup, run.device)
    variants = [
        Variant("project", _iteration(ProjectProtoNet(copy.deepcopy(net)), batch)),
        Variant("per-episode loop (learn2learn)", _iteration(EpisodeLoopProtoNet(net, setup.ways, setup.shots), batch)),
    ]
    result.timings, failures = measure(variants, run)
    result.notes += failures
    return result


def b4(run: BenchRun) -> list[CaseResult]:
    """Conv-4-64 ProtoNet: the 5-way test shapes and the 30-/20-way training shapes."""
    scale = run.scale
    shapes = ((5, 1), (20, 1)) if scale.name == "small" else ((5, 1), (5, 5), (30, 1), (20, 5))
    tasks = scale.meta_batches[0]
    return [
        protonet_case(
            MAMLSetup(
                tasks=tasks, shots=shots, ways=ways, queries=scale.queries, image_size=scale.image_size, hidden=64
            ),
            run,
        )
        for ways, shots in shapes
    ]
