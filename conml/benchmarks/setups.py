"""The MAML benchmark configurations and their synthetic episodes.

Model benchmarks feed every implementation the same tensors, already on the device, so the data
path is left out (it has its own benchmark). Images are Gaussian noise: speed does not depend on
pixel values, and the correctness gates compare gradients, not accuracy. Sine-wave tasks
(Finn et al.'s 1-40-40-1 regressor) are the small-network end of the same comparison; Omniglot
(1-channel 28 px characters, Finn et al.'s stride-2 Conv-4) lies between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from conml.episodes import EpisodeBatch, Tasks
from conml.nets.conv import ConvNet
from conml.nets.mlp import MLP
from conml.task_kind import CLASSIFICATION, REGRESSION, TaskKind


@dataclass(frozen=True)
class MAMLSetup:
    """`tasks` episodes of `ways`-way `shots`-shot classification for a Conv-4, and MAML's inner loop
    (which ProtoNet ignores). With `sine`, `shots`/`queries` points of sine-wave regression for a
    1-40-40-1 MLP instead (`ways`, `image_size` and `hidden` do not apply). With `omniglot`, 1-channel
    images for Finn et al.'s Omniglot Conv-4 (configs/model/conv4_omniglot.yaml: stride-2
    convolutions, no max-pooling, the last feature map averaged over space)."""

    tasks: int
    shots: int
    ways: int = 5
    queries: int = 15
    image_size: int = 84
    hidden: int = 32
    inner_steps: int = 5
    inner_lr: float = 0.01
    first_order: bool = False
    conml: bool = False  # add ConML's contrastive term (K = 1, kappa = the support set)
    sine: bool = False
    omniglot: bool = False

    @property
    def channels(self) -> int:
        return 1 if self.omniglot else 3

    @property
    def kind(self) -> TaskKind:
        return REGRESSION if self.sine else CLASSIFICATION

    @property
    def label(self) -> str:
        order = "1st-order" if self.first_order else "2nd-order"
        extra = " +ConML" if self.conml else ""
        if self.sine:
            return f"sine {self.shots}-shot q{self.queries} B={self.tasks} MLP 1-40-40-1 {self.inner_steps} steps {order}{extra}"
        if self.omniglot:
            return (
                f"omniglot {self.ways}w{self.shots}s q{self.queries} B={self.tasks} {self.image_size}px 1ch "
                f"Conv4-{self.hidden} stride 2 {self.inner_steps} steps {order}{extra}"
            )
        return (
            f"{self.ways}w{self.shots}s q{self.queries} B={self.tasks} {self.image_size}px "
            f"Conv4-{self.hidden} {self.inner_steps} steps {order}{extra}"
        )

    def gate_sized(self) -> MAMLSetup:
        """The same algorithm on a size small enough for float64 gradient checks on a CPU.

        The step size is rounded to float32, the precision in which MAML stores its step sizes,
        so that every implementation takes exactly the same steps. Omniglot keeps its 28 px: a
        1-channel image is small already, and 28 -> 14 -> 7 -> 4 -> 2 keeps the odd size and the 2 x 2
        map that the spatial mean averages.
        """
        step = torch.tensor(self.inner_lr, dtype=torch.float32).item()
        size = self.image_size if self.omniglot else 16
        return replace(self, tasks=3, queries=3, image_size=size, hidden=8, inner_lr=step)


def sine_setup(tasks: int, shots: int = 10, queries: int = 10, conml: bool = False) -> MAMLSetup:
    """The project's sine-wave MAML (configs/learner/maml.yaml: one inner step of 0.01, second order):
    the default experiment at 10 shots, the Table 2 presets at 5 shots and 5 queries."""
    return MAMLSetup(tasks=tasks, shots=shots, queries=queries, inner_steps=1, inner_lr=0.01, conml=conml, sine=True)


def omniglot_setup(tasks: int, shots: int = 1, conml: bool = False) -> MAMLSetup:
    """Finn et al.'s 5-way Omniglot MAML as it is meta-trained (configs/experiment/omniglot/maml.yaml):
    as many query as support images, one inner step of 0.4, second order, 28 px, Conv-4-64."""
    return MAMLSetup(
        tasks=tasks,
        shots=shots,
        queries=shots,
        image_size=28,
        hidden=64,
        inner_steps=1,
        inner_lr=0.4,
        conml=conml,
        omniglot=True,
    )


def network(setup: MAMLSetup, seed: int = 0) -> nn.Module:
    """The setup's freshly initialised network (the same weights for the same seed)."""
    torch.manual_seed(seed)
    if setup.sine:
        return MLP(in_features=1, hidden=(40, 40), out_features=1)
    # Finn et al.'s Omniglot Conv-4 (stride-2 convolutions, the last map averaged) or their miniImageNet one.
    return ConvNet(
        in_channels=1 if setup.omniglot else 3,
        hidden=setup.hidden,
        blocks=4,
        out_features=setup.ways,
        image_size=setup.image_size,
        bn_eps=1e-3,
        stride=2 if setup.omniglot else 1,
        max_pool=not setup.omniglot,
        spatial_mean=setup.omniglot,
    )


def synthetic_batch(
    setup: MAMLSetup, device: torch.device, dtype: torch.dtype = torch.float32, seed: int = 0
) -> EpisodeBatch:
    """Noise images with balanced labels, class-major like a real episode, or sine-wave points.

    Inputs are drawn in float32 whatever `dtype`, so a float64 batch holds the float32 one's values.
    """
    g = torch.Generator().manual_seed(seed)
    if setup.sine:
        amplitude = 0.1 + 4.9 * torch.rand(setup.tasks, 1, 1, generator=g)
        phase = torch.pi * torch.rand(setup.tasks, 1, 1, generator=g)
        x = 10.0 * torch.rand(setup.tasks, setup.shots + setup.queries, 1, generator=g) - 5.0
        x, y = x.to(dtype), (amplitude * torch.sin(x - phase)).to(dtype)
        return EpisodeBatch(
            Tasks(x[:, : setup.shots], y[:, : setup.shots]), Tasks(x[:, setup.shots :], y[:, setup.shots :])
        ).to(device)

    def tasks(per_class: int) -> Tasks:
        n = setup.ways * per_class
        x = torch.randn(setup.tasks, n, setup.channels, setup.image_size, setup.image_size, generator=g).to(dtype)
        y = torch.arange(setup.ways).repeat_interleave(per_class).repeat(setup.tasks, 1)
        return Tasks(x, y)

    return EpisodeBatch(tasks(setup.shots), tasks(setup.queries)).to(device)
