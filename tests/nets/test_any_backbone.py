"""Any nn.Module backbone works with MAML, FOMAML, Reptile and ProtoNet.

Nets the fast path cannot run (torchvision's MLP with LayerNorm and Dropout, GroupNorm, a custom
residual module, BatchNorm tracking running statistics) give, in float64, the meta-gradients with
ConML of the per-task references of test_conml_reference, which run `functional_call` one task at a
time. Each task runs as if alone and draws its own dropout masks, on every path; a net vmap cannot
run is refused unless it declares that it runs task by task; the project's nets declare the fast path."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import Tensor, nn
from torch.func import functional_call

from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.learners.maml import MAML
from conml.learners.protonet import ProtoNet
from conml.learners.reptile import Reptile
from conml.nets.mlp import MLP
from conml.nets.task_batched import TaskBatched, task_params
from conml.nets.task_functional import TaskByTask, TaskPath, task_call, task_path
from conml.objective import ConMLObjective, ConMLSettings
from conml.task_kind import CLASSIFICATION, REGRESSION
from tests.learner_settings import configured
from tests.learners.test_conml_reference import WAYS, image_batch, maml_reference, metric_reference, reptile_reference
from tests.net_settings import configured_net

TASKS = 3
SETTINGS = ConMLSettings(lam=0.5)


class ResidualBlock(nn.Module):
    """x + conv(relu(groupnorm(x))): a module of the user's own, without a task_forward."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(2, channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(torch.relu(self.norm(x)))


def residual_net(track_running_stats: bool, out_features: int | None = WAYS) -> nn.Sequential:
    layers = [
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4, track_running_stats=track_running_stats),
        nn.ReLU(),
        ResidualBlock(4),
        nn.MaxPool2d(2),
        nn.Flatten(),
    ]
    return nn.Sequential(*layers, *([nn.Linear(4 * 4 * 4, out_features)] if out_features else []))


def layernorm_mlp(dropout: float = 0.0) -> nn.Module:
    """torchvision's MLP: Linear -> LayerNorm -> ReLU -> Dropout blocks."""
    return torchvision.ops.MLP(1, [16, 16, 1], norm_layer=nn.LayerNorm, dropout=dropout)


def regression_batch(g: torch.Generator, tasks: int) -> EpisodeBatch:
    x = 3 * torch.rand(tasks, 10, 1, generator=g, dtype=torch.float64) - 1.5
    y = torch.sin(x + torch.rand(tasks, 1, 1, generator=g, dtype=torch.float64)) * torch.arange(
        1, tasks + 1, dtype=torch.float64
    ).view(-1, 1, 1)
    return EpisodeBatch(Tasks(x[:, :5], y[:, :5]), Tasks(x[:, 5:], y[:, 5:]))


# Dropout of p > 0 draws masks a reference cannot replay, so the MLP's is 0 here; that each task
# draws its own mask is tested below.
NETS = {
    "torchvision-mlp-layernorm": (layernorm_mlp, REGRESSION, regression_batch, TaskPath.vmap),
    "residual-batch-statistics": (
        lambda: residual_net(track_running_stats=False),
        CLASSIFICATION,
        lambda g, t: image_batch(g, t, 8),
        TaskPath.vmap,
    ),
    "residual-running-statistics": (
        lambda: residual_net(track_running_stats=True),
        CLASSIFICATION,
        lambda g, t: image_batch(g, t, 8),
        TaskPath.loop,
    ),
}
LEARNERS = {
    "maml": (
        lambda net, kind: configured("maml", net, kind, inner_steps=2, inner_lr=0.3, learn_inner_lr=True),
        maml_reference,
    ),
    "fomaml": (
        lambda net, kind: configured("maml", net, kind, inner_steps=2, inner_lr=0.3, first_order=True),
        maml_reference,
    ),
    "reptile": (
        lambda net, kind: configured("reptile", net, kind, inner_steps=3, inner_lr=0.01, inner_batch_size=4),
        reptile_reference,
    ),
}


@pytest.mark.parametrize("learner_name", sorted(LEARNERS))
@pytest.mark.parametrize("net_name", sorted(NETS))
def test_meta_gradient_with_conml_matches_the_per_task_reference(net_name, learner_name):
    build_net, kind, make_batch, path = NETS[net_name]
    build_learner, reference = LEARNERS[learner_name]
    torch.manual_seed(0)
    learner = build_learner(build_net(), kind).double()
    batch = make_batch(torch.Generator().manual_seed(0), TASKS)
    assert task_path(learner.net) is path
    assert_meta_gradient_matches(learner, batch, reference)


def test_protonet_embeds_with_any_backbone():
    torch.manual_seed(0)
    learner = configured(
        "protonet", residual_net(track_running_stats=False, out_features=None), CLASSIFICATION
    ).double()
    assert_meta_gradient_matches(learner, image_batch(torch.Generator().manual_seed(0), TASKS, 8), metric_reference)


def assert_meta_gradient_matches(learner, batch: EpisodeBatch, reference) -> None:
    """L_e + lambda * (d_in - d_out) and its meta-gradient equal the reference's to 1e-10."""
    params = [p for p in learner.parameters() if p.requires_grad]
    ours = ConMLObjective(SETTINGS)(learner, batch).total
    expected = reference(learner, batch)
    d_in, d_out = expected.distances(SETTINGS)
    theirs = expected.episodic + SETTINGS.lam * (d_in - d_out)
    assert abs(ours.item() - theirs.item()) < 1e-10
    assert abs(d_in.item() - d_out.item()) > 1e-6, "degenerate case: ConML's term is zero"
    got, wanted = torch.autograd.grad(ours, params), torch.autograd.grad(theirs, params)
    worst = max((a - b).abs().max().item() for a, b in zip(got, wanted))
    assert worst < 1e-10, f"meta-gradient differs from the per-task reference by {worst:.3e}"
    assert max(b.abs().max().item() for b in wanted) > 1e-4, "degenerate case: the reference gradient is zero"


def test_second_order_terms_reach_the_general_path():
    """Guards the MAML case above against second-order terms lost on the way (they do not vanish here)."""
    torch.manual_seed(0)
    net = residual_net(track_running_stats=False).double()
    batch = image_batch(torch.Generator().manual_seed(0), TASKS, 8)
    grads = []
    for first_order in (False, True):
        learner = configured("maml", net, CLASSIFICATION, inner_steps=1, inner_lr=0.3, first_order=first_order).double()
        grads.append(
            torch.autograd.grad(
                ConMLObjective(ConMLSettings(enabled=False))(learner, batch).total, list(net.parameters())
            )
        )
    assert max((a - b).abs().max().item() for a, b in zip(*grads)) > 1e-6


def test_the_fast_path_is_taken_by_the_nets_that_declare_it():
    declared = [
        configured_net("mlp"),
        configured_net("conv4", hidden=4, image_size=16, out_features=5),
        configured_net("kim_conv6", channels=[4, 8], fc_units=8, image_size=16),
        configured_net("resnet12", channels=(4, 4, 4, 4), image_size=16),
    ]
    for net in declared:
        assert task_path(net) is TaskPath.grouped and task_path(net.eval()) is TaskPath.grouped, type(net).__name__
    # Layers the fast path knows do not take it without the declaration: it is not inferred from the structure.
    assert task_path(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten())) is TaskPath.vmap
    assert task_path(layernorm_mlp()) is TaskPath.vmap
    # BatchNorm tracking running statistics writes them in training mode only.
    tracking = residual_net(track_running_stats=True)
    assert task_path(tracking) is TaskPath.loop and task_path(tracking.eval()) is TaskPath.vmap


class Declared(nn.Sequential, TaskBatched):
    """A user's net that declares the fast path."""


class Linear(nn.Linear):
    """An nn.Linear subclass with a forward of its own, which the fast path would not run."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).tanh()


@pytest.mark.parametrize(
    "build,inputs",
    [
        (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), nn.GroupNorm(2, 4), nn.Flatten()), (3, 8, 8)),
        (lambda: nn.Sequential(Linear(5, 4), nn.LayerNorm(4)), (5,)),
        (lambda: residual_net(track_running_stats=True), (3, 8, 8)),
        (lambda: residual_net(track_running_stats=True).eval(), (3, 8, 8)),
    ],
    ids=["same-padding", "linear-subclass", "running-stats-train", "running-stats-eval"],
)
@pytest.mark.parametrize("shared", [False, True], ids=["per-task", "shared"])
def test_each_task_runs_as_if_alone(build, inputs, shared):
    """Per-task weights (or shared ones) and per-task BatchNorm statistics, whatever the other tasks hold."""
    torch.manual_seed(0)
    net = build().double()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d) and module.running_mean is not None:
                module.running_mean.normal_(0, 1), module.running_var.uniform_(0.5, 2)
    params = {
        name: p if shared else p + 0.1 * torch.randn(TASKS, *p.shape, dtype=p.dtype)
        for name, p in net.named_parameters()
    }
    x = torch.randn(TASKS, 6, *inputs, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1], dtype=torch.float64).view(
        -1, *[1] * (len(inputs) + 1)
    )
    buffers = {name: b.clone() for name, b in net.named_buffers()}
    together = task_call(net, params, x)
    alone = []
    for t in range(TASKS):
        net.load_state_dict(buffers, strict=False)  # the statistics task_call found
        alone.append(functional_call(net, {name: p if shared else p[t] for name, p in params.items()}, (x[t],)))
    torch.testing.assert_close(together, torch.stack(alone), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "norm,path",
    [
        (lambda: Declared(nn.Linear(8, 8)), TaskPath.grouped),
        (lambda: nn.LayerNorm(8), TaskPath.vmap),
        (lambda: nn.BatchNorm1d(8), TaskPath.loop),
    ],
    ids=["grouped", "vmap", "loop"],
)
def test_each_task_draws_its_own_dropout_mask(norm, path):
    torch.manual_seed(0)
    net = nn.Sequential(norm(), nn.Dropout(0.5)).double()
    if path is TaskPath.grouped:
        net = Declared(*net)
    assert task_path(net) is path
    x = torch.randn(1, 20, 8, dtype=torch.float64).expand(TASKS, -1, -1)  # the same examples in every task
    params = task_params(net, TASKS)
    out = task_call(net, params, x)
    kept = out != 0
    for t in range(TASKS):
        assert 0.3 < kept[t].double().mean() < 0.7
        for other in range(t):
            assert (kept[t] != kept[other]).any(), f"tasks {other} and {t} drew the same dropout mask"
    # Kept units are scaled by 1 / (1 - p), as nn.Dropout does.
    before = task_call(net[:1], params, x)
    torch.testing.assert_close(out[kept], 2 * before[kept], rtol=1e-15, atol=0)


class Branching(nn.Module):
    """Data-dependent control flow, which vmap cannot run."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x) if x.sum() > 0 else -self.linear(x)


class DeclaredBranching(Branching, TaskByTask):
    """The same module, declaring that it runs task by task."""


def test_a_net_vmap_cannot_run_is_refused_with_the_declaration_to_make():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dropout(0.5), Branching()).double()
    assert task_path(net) is TaskPath.vmap
    with pytest.raises(ConfigError, match="cannot run under torch.func.vmap.*TaskByTask"):
        task_call(net, task_params(net, TASKS), torch.randn(TASKS, 5, 4, dtype=torch.float64))


def test_a_fault_of_the_net_itself_is_not_blamed_on_vmap():
    net = nn.Sequential(nn.Linear(4, 4)).double()
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        task_call(net, task_params(net, TASKS), torch.randn(TASKS, 5, 3, dtype=torch.float64))


def test_a_net_declared_task_by_task_runs_the_loop_with_the_same_random_numbers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dropout(0.5), DeclaredBranching()).double()
    params = task_params(net, TASKS)
    x = torch.randn(TASKS, 5, 4, dtype=torch.float64)
    assert task_path(net) is TaskPath.loop and task_path(net.eval()) is TaskPath.loop
    net.train()
    torch.manual_seed(1)
    out = task_call(net, params, x)
    torch.manual_seed(1)
    loop = torch.stack(
        [functional_call(net, {name: p[t] for name, p in params.items()}, (x[t],)) for t in range(TASKS)]
    )
    torch.testing.assert_close(out, loop, rtol=0, atol=0)
