"""ConML's terms for every learner against a per-task reference written out here, in float64.

For each learner the reference builds, one task at a time in a plain loop, the model learned from
the subset kappa and from the whole task (support ∪ query) by the simplest independent route
(`functional_call` inner loops, `torch.optim.Adam`, class means, the FiLM generator on one task, one
prompt forward per prediction), maps them to psi, and computes
    d_in  = mean over tasks tau of phi(e^kappa_tau, e*_tau),
    d_out = mean over ordered pairs tau != tau' of phi(e*_tau, e*_tau'),
and the learner's episodic loss. `ConMLObjective` must give the same values (1e-10) and the same
gradients of L_e, lambda * d_in and lambda * d_out for every meta-parameter (1e-8 relative);
parameters psi does not depend on must get none, all others some. Further checks: a task's psi and loss do not depend on the
other tasks of the batch or on BatchNorm running statistics, and repeating the batch leaves d_in
unchanged and changes d_out as its definition says (no stray factor of B).
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from conml.distances import Distance
from conml.episodes import EpisodeBatch, Tasks
from conml.learners.base import Adaptation, Learner
from conml.learners.icl import InContextLearner
from conml.learners.maml import MAML
from conml.learners.matchingnet import MatchingNet
from conml.learners.protonet import ProtoNet
from conml.learners.reptile import Reptile
from conml.learners.simple_cnaps import SimpleCNAPs
from conml.nets.conv import ConvNet
from conml.nets.gpt2 import GPT2
from conml.nets.resnet18 import FilmResNet18
from conml.objective import Centring, ConMLObjective, ConMLSettings, SubsetStrategy
from conml.task_kind import CLASSIFICATION, REGRESSION
from tests.learner_settings import configured
from tests.net_settings import configured_net

TASKS, WAYS, SHOTS, QUERIES = 3, 3, 2, 2
VALUE_TOLERANCE, GRADIENT_RTOL = 1e-10, 1e-8


# ----------------------------------------------------------------------------------------------
# Hand-written distances and the ConML terms from per-task representations


def cosine(a: Tensor, b: Tensor) -> Tensor:
    return 1 - (a * b).sum() / (a.norm() * b.norm())


def sigmoid_squared(a: Tensor, b: Tensor) -> Tensor:
    return torch.sigmoid((a - b).pow(2).sum())


PHI = {Distance.cosine: cosine, Distance.sigmoid_squared: sigmoid_squared}


@dataclass
class Reference:
    """Per-task psi of the subset and whole-task models, and the episodic loss of the batch."""

    kappa: list[Tensor]
    whole: list[Tensor]
    episodic: Tensor

    def distances(self, settings: ConMLSettings) -> tuple[Tensor, Tensor]:
        """(d_in, d_out) by their definitions, after centring when the settings ask for it."""
        phi, kappa, whole = PHI[settings.phi], self.kappa, self.whole
        if settings.centring == Centring.meta_batch:
            centre = torch.stack(whole).mean(0)
            kappa, whole = [e - centre for e in kappa], [e - centre for e in whole]
        d_in = torch.stack([phi(a, b) for a, b in zip(kappa, whole)]).mean()
        pairs = itertools.permutations(range(len(whole)), 2)
        d_out = torch.stack([phi(whole[i], whole[j]) for i, j in pairs]).mean()
        return d_in, d_out


def task_loss(kind, prediction: Tensor, y: Tensor) -> Tensor:
    """One task's mean loss, written out: cross-entropy or squared error."""
    if kind is CLASSIFICATION:
        return F.cross_entropy(prediction, y)
    return (prediction - y).pow(2).mean()


def task(tasks: Tasks, t: int) -> tuple[Tensor, Tensor]:
    return tasks.x[t], tasks.y[t]


def flat(weights: dict[str, Tensor]) -> Tensor:
    return torch.cat([w.flatten() for w in weights.values()])


# ----------------------------------------------------------------------------------------------
# Per-task references, one per learner family


def maml_reference(learner: MAML, batch: EpisodeBatch) -> Reference:
    """MAML / FOMAML: `inner_steps` gradient steps on one task at a time with `functional_call`."""
    theta = dict(learner.net.named_parameters())

    def adapt(x, y):
        params = dict(theta)
        for step in range(learner.inner_steps):
            loss = task_loss(learner.kind, functional_call(learner.net, params, (x,)), y)
            # FOMAML: without create_graph the inner gradients are constants of theta.
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=not learner.first_order)
            params = {name: p - learner.inner_lr[step] * g for (name, p), g in zip(params.items(), grads)}
        return params

    def psi(adapted):
        if learner.representation == "update":
            return flat({name: w - theta[name] for name, w in adapted.items()})
        return flat(adapted)

    kappa, whole, losses = [], [], []
    for t in range(batch.num_tasks):
        (xs, ys), (xq, yq) = task(batch.support, t), task(batch.query, t)
        support_model = adapt(xs, ys)
        losses.append(task_loss(learner.kind, functional_call(learner.net, support_model, (xq,)), yq))
        kappa.append(psi(support_model))
        whole.append(psi(adapt(torch.cat([xs, xq]), torch.cat([ys, yq]))))
    return Reference(kappa, whole, torch.stack(losses).mean())


def reptile_reference(learner: Reptile, batch: EpisodeBatch) -> Reference:
    """Reptile: torch.optim.Adam (or SGD) on a detached copy of theta per task; psi = theta + that update."""
    theta = dict(learner.net.named_parameters())

    def update(x, y):
        weights = {name: p.detach().clone().requires_grad_() for name, p in theta.items()}
        if learner.inner_optimizer == "adam":
            optimizer = torch.optim.Adam(
                weights.values(), lr=learner.inner_lr, betas=learner.adam_betas, eps=learner.adam_eps
            )
        else:
            optimizer = torch.optim.SGD(weights.values(), lr=learner.inner_lr)
        size = learner.inner_batch_size
        for step in range(learner.inner_steps):
            chunk = [(step * size + i) % len(x) for i in range(size)] if size < len(x) else list(range(len(x)))
            optimizer.zero_grad()
            task_loss(learner.kind, functional_call(learner.net, weights, (x[chunk],)), y[chunk]).backward()
            optimizer.step()
        return flat(weights).detach() - flat(theta).detach()

    start = 0 if learner.representation == "update" else flat(theta)
    kappa, whole, losses = [], [], []
    for t in range(batch.num_tasks):
        (xs, ys), (xq, yq) = task(batch.support, t), task(batch.query, t)
        kappa.append(start + update(xs, ys))
        whole_update = update(torch.cat([xs, xq]), torch.cat([ys, yq]))
        whole.append(start + whole_update)
        # Reptile's surrogate: 0.5 * ||theta - stopgrad(whole-task weights)||^2, whose gradient is minus the update.
        losses.append(0.5 * (flat(theta) - (flat(theta) + whole_update).detach()).pow(2).sum())
    return Reference(kappa, whole, torch.stack(losses).mean())


def class_means(embeddings: Tensor, labels: Tensor, ways: int, centred: bool) -> Tensor:
    """The class means in label order, minus their mean for the `centred` representation."""
    means = torch.stack([embeddings[labels == k].mean(0) for k in range(ways)])
    return (means - means.mean(0) if centred else means).flatten()


def metric_reference(learner: ProtoNet | MatchingNet, batch: EpisodeBatch) -> Reference:
    """ProtoNet / MatchingNet: the net embeds a task's support ∪ query in one call (its own BatchNorm
    statistics); psi = class means of the support rows, or of all rows."""
    ways, cut, centred = WAYS, batch.support.num_examples, learner.representation == "centred"
    kappa, whole, losses = [], [], []
    for t in range(batch.num_tasks):
        (xs, ys), (xq, yq) = task(batch.support, t), task(batch.query, t)
        embeddings = learner.net(torch.cat([xs, xq]))
        support, queries = embeddings[:cut], embeddings[cut:]
        kappa.append(class_means(support, ys, ways, centred))
        whole.append(class_means(embeddings, torch.cat([ys, yq]), ways, centred))
        if isinstance(learner, ProtoNet):
            prototypes = class_means(support, ys, ways, centred=False).view(ways, -1)
            logits = -(queries[:, None, :] - prototypes[None]).pow(2).sum(-1)
        else:
            similarity = (queries / queries.norm(dim=1, keepdim=True)) @ (support / support.norm(dim=1, keepdim=True)).T
            logits = torch.log(
                torch.softmax(learner.scale * similarity, dim=1) @ F.one_hot(ys, ways).to(similarity.dtype)
            )
        losses.append(task_loss(learner.kind, logits, yq))
    return Reference(kappa, whole, torch.stack(losses).mean())


def set_encoding(learner: SimpleCNAPs, x: Tensor) -> Tensor:
    """The set encoder on one task's images, BatchNorm over those images only."""
    encoder = learner.set_encoder
    for b, conv in enumerate(encoder.convs):
        x = F.batch_norm(
            conv(x), None, None, encoder.norm_weight[b], encoder.norm_bias[b], training=True, eps=encoder.eps
        )
        x = F.max_pool2d(F.relu(x), 2)
    return x.mean((0, 2, 3))


def simple_cnaps_reference(learner: SimpleCNAPs, batch: EpisodeBatch) -> Reference:
    """Simple CNAPs: FiLM parameters of one task from the generator; Mahalanobis classifier per class."""

    def film(x):
        return [stage[0] for stage in learner.film(set_encoding(learner, x)[None])]

    def psi(parameters):
        if learner.representation == "offset":
            gamma = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=parameters[0].dtype)[
                :, None
            ]  # (gamma1, beta1, gamma2, beta2)
            parameters = [p - gamma for p in parameters]
        return torch.cat([p.flatten() for p in parameters])

    def features(parameters, x):
        return learner.net(x, [p.expand(len(x), *p.shape) for p in parameters])

    kappa, whole, losses = [], [], []
    for t in range(batch.num_tasks):
        (xs, ys), (xq, yq) = task(batch.support, t), task(batch.query, t)
        support_film = film(xs)
        kappa.append(psi(support_film))
        whole.append(psi(film(torch.cat([xs, xq]))))
        fs, fq = features(support_film, xs), features(support_film, xq)
        logits = []
        for k in range(WAYS):
            members = fs[ys == k]
            mix = len(members) / (len(members) + 1)
            covariance = (
                mix * torch.cov(members.T) + (1 - mix) * torch.cov(fs.T) + torch.eye(fs.shape[1], dtype=fs.dtype)
            )
            diff = fq - members.mean(0)
            logits.append(-torch.einsum("md,de,me->m", diff, torch.linalg.inv(covariance), diff))
        losses.append(task_loss(learner.kind, torch.stack(logits, 1), yq))
    regularizer = sum(stage.scales.pow(2).sum() for stage in learner.film.stages)
    return Reference(kappa, whole, torch.stack(losses).mean() + learner.film_l2 * regularizer)


def icl_reference(learner: InContextLearner, batch: EpisodeBatch) -> Reference:
    """In-context learning: one forward per prediction, of [x_1, y_1, ..., x_k, y_k, query]."""

    def answer(x, y, query):
        tokens = [query.new_zeros(0, query.shape[0])]
        for xi, yi in zip(x, y):
            tokens += [xi[None], F.pad(yi, (0, len(xi) - len(yi)))[None]]
        return learner.net(torch.cat([*tokens, query[None]])[None])[0, -1]

    size = int(ICL_SETTINGS.subset_fraction * batch.whole.num_examples)  # kappa: the prompt's first half
    kappa, whole, losses = [], [], []
    for t in range(batch.num_tasks):
        x, y = task(batch.whole, t)
        kappa.append(answer(x[:size], y[:size], batch.probe))
        whole.append(answer(x, y, batch.probe))
        losses.append(torch.stack([(answer(x[:k], y[:k], x[k]) - y[k]).pow(2).mean() for k in range(len(x))]).mean())
    return Reference(kappa, whole, torch.stack(losses).mean())


# ----------------------------------------------------------------------------------------------
# Learners and batches


def image_batch(g: torch.Generator, tasks: int, size: int) -> EpisodeBatch:
    """`tasks` random WAYS-way tasks, SHOTS + QUERIES images per class, labels shuffled within each task."""

    def part(shots):
        order = torch.stack([torch.randperm(WAYS * shots, generator=g) for _ in range(tasks)])
        y = torch.arange(WAYS).repeat(shots)[order]
        return Tasks(torch.randn(tasks, WAYS * shots, 3, size, size, generator=g, dtype=torch.float64), y)

    return EpisodeBatch(part(SHOTS), part(QUERIES))


def prompt_batch(g: torch.Generator, tasks: int, dims: int = 3, points: int = 6) -> EpisodeBatch:
    """Linear-regression prompts of `points` pairs (the last 2 are the query) and one probe shared by the batch."""
    x = torch.randn(tasks, points, dims, generator=g, dtype=torch.float64)
    y = x @ torch.randn(tasks, dims, 1, generator=g, dtype=torch.float64)
    probe = torch.randn(dims, generator=g, dtype=torch.float64)
    shots = points - 2
    return EpisodeBatch(Tasks(x[:, :shots], y[:, :shots]), Tasks(x[:, shots:], y[:, shots:]), probe)


def conv(out_features: int | None) -> ConvNet:
    return configured_net("conv4", in_channels=3, hidden=4, blocks=2, out_features=out_features, image_size=8)


def frozen_film_resnet(workdir: Path) -> FilmResNet18:
    """A 'pretrained' FilmResNet18 of width 4 (random weights and BatchNorm statistics), frozen as in Simple CNAPs."""
    pretrained = configured_net("resnet18_film", width=4, pretrained=None, frozen=False)
    for module in pretrained.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    path = workdir / "pretrained_resnet_meta_dataset.pt.tar"
    torch.save({"state_dict": pretrained.state_dict()}, path)
    return configured_net("resnet18_film", width=4, pretrained=str(path))


def context_sensitive_gpt2() -> GPT2:
    """A tiny GPT-2 with large random weights: with GPT-2's initialisation (std 0.02) the prediction at the
    probe hardly depends on the prompt, and d_in, d_out would all be sigmoid(~0) = 1/2."""
    net = configured_net("gpt2", in_features=3, width=8, depth=2, heads=2, max_positions=16)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.5)
    return net


@dataclass(frozen=True)
class Case:
    """A learner (built from a seeded RNG and a work folder), its batches, its reference and its ConML settings."""

    learner: Callable[[Path], Learner]
    batch: Callable[[torch.Generator, int], EpisodeBatch]
    reference: Callable[[Learner, EpisodeBatch], Reference]
    settings: ConMLSettings = field(default_factory=lambda: ConMLSettings(lam=0.1))
    # Meta-parameters psi does not depend on (fnmatch patterns): they must get no ConML gradient.
    no_conml_gradient: tuple[str, ...] = ()
    value_tolerance: float = VALUE_TOLERANCE
    gradient_rtol: float = GRADIENT_RTOL


def maml(**options) -> Callable[[Path], MAML]:
    return lambda _: configured(
        "maml", conv(WAYS), CLASSIFICATION, inner_steps=2, inner_lr=0.3, learn_inner_lr=True, **options
    )


def reptile(**options) -> Callable[[Path], Reptile]:
    return lambda _: configured("reptile", conv(WAYS), CLASSIFICATION, inner_steps=3, inner_batch_size=4, **options)


def simple_cnaps(**options) -> Callable[[Path], SimpleCNAPs]:
    """Simple CNAPs whose FiLM output scales are large, as after training: at their initialisation
    (std 1e-3) every task's FiLM parameters sit at the identity and cosine distances are ~1e-9."""

    def build(workdir: Path) -> SimpleCNAPs:
        learner = configured(
            "simple_cnaps", frozen_film_resnet(workdir), CLASSIFICATION, set_encoder_width=4, film_l2=0.1, **options
        )
        with torch.no_grad():
            for stage in learner.film.stages:
                stage.scales.normal_(0.0, 0.3)
        return learner

    return build


IMAGES = lambda g, tasks: image_batch(g, tasks, 8)  # noqa: E731
LARGE_IMAGES = lambda g, tasks: image_batch(g, tasks, 32)  # noqa: E731  (the set encoder halves them five times)
CENTRED = ConMLSettings(lam=0.1, centring=Centring.meta_batch)
ICL_SETTINGS = ConMLSettings(lam=0.02, phi=Distance.sigmoid_squared, subset=SubsetStrategy.prefix, subset_fraction=0.5)
# Convolution biases right before a BatchNorm are cancelled by it.
BIASES_BEFORE_BATCHNORM = ("net.0.bias", "net.4.bias")
# First-order learners whose psi depends on theta only through a shift shared by all tasks, or not at
# all: psi = theta' - theta is -lr * stopgrad(...), and centring removes the shared theta. ConML then
# reaches only learned inner step sizes.
NO_PATH_TO_NET = ("net.*",)

CASES = {
    "maml": Case(maml(), IMAGES, maml_reference),
    # A bias before BatchNorm has no inner gradient, so its update (and its centred weight) is zero.
    "maml-update": Case(
        maml(representation="update"), IMAGES, maml_reference, no_conml_gradient=BIASES_BEFORE_BATCHNORM
    ),
    "maml-centring": Case(maml(), IMAGES, maml_reference, CENTRED, no_conml_gradient=BIASES_BEFORE_BATCHNORM),
    "fomaml": Case(maml(first_order=True), IMAGES, maml_reference),
    "fomaml-update": Case(
        maml(first_order=True, representation="update"), IMAGES, maml_reference, no_conml_gradient=NO_PATH_TO_NET
    ),
    "fomaml-centring": Case(maml(first_order=True), IMAGES, maml_reference, CENTRED, no_conml_gradient=NO_PATH_TO_NET),
    "reptile": Case(reptile(inner_lr=0.01), IMAGES, reptile_reference),
    "reptile-sgd": Case(reptile(inner_lr=0.3, inner_optimizer="sgd"), IMAGES, reptile_reference),
    "reptile-update": Case(
        reptile(inner_lr=0.01, representation="update"), IMAGES, reptile_reference, no_conml_gradient=NO_PATH_TO_NET
    ),
    "protonet": Case(
        lambda _: configured("protonet", conv(None), CLASSIFICATION),
        IMAGES,
        metric_reference,
        no_conml_gradient=BIASES_BEFORE_BATCHNORM,
    ),
    "protonet-centred": Case(
        lambda _: configured("protonet", conv(None), CLASSIFICATION, representation="centred"),
        IMAGES,
        metric_reference,
        no_conml_gradient=BIASES_BEFORE_BATCHNORM,
    ),
    "matchingnet": Case(
        lambda _: configured("matchingnet", conv(None), CLASSIFICATION, scale=3.0),
        IMAGES,
        metric_reference,
        no_conml_gradient=BIASES_BEFORE_BATCHNORM,
    ),
    "simple_cnaps": Case(
        simple_cnaps(), LARGE_IMAGES, simple_cnaps_reference, no_conml_gradient=("set_encoder.convs.*.bias",)
    ),
    "simple_cnaps-offset": Case(
        simple_cnaps(representation="offset"),
        LARGE_IMAGES,
        simple_cnaps_reference,
        no_conml_gradient=("set_encoder.convs.*.bias",),
    ),
    # The final biases shift every prediction at the probe alike, and phi sees only differences.
    "icl": Case(
        lambda _: configured("icl", context_sensitive_gpt2(), REGRESSION),
        prompt_batch,
        icl_reference,
        ICL_SETTINGS,
        no_conml_gradient=("net.final_norm.bias", "net.read_out.bias"),
    ),
}


@pytest.fixture(params=sorted(CASES))
def case(request) -> Case:
    return CASES[request.param]


@pytest.fixture
def learner(case, tmp_path) -> Learner:
    torch.manual_seed(0)
    return case.learner(tmp_path).double()


def batch_of(case: Case, seed: int = 0, tasks: int = TASKS) -> EpisodeBatch:
    return case.batch(torch.Generator().manual_seed(seed), tasks)


def meta_parameters(learner: Learner) -> dict[str, Tensor]:
    return {name: p for name, p in learner.named_parameters() if p.requires_grad}


def gradients(value: Tensor, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """d value / d p for every meta-parameter; zeros where value does not depend on p at all."""
    if not value.requires_grad:
        return {name: torch.zeros_like(p) for name, p in params.items()}
    grads = torch.autograd.grad(value, list(params.values()), retain_graph=True, allow_unused=True)
    return {name: torch.zeros_like(p) if g is None else g for (name, p), g in zip(params.items(), grads)}


# ----------------------------------------------------------------------------------------------
# Tests


def test_terms_match_the_per_task_reference(case, learner):
    batch = batch_of(case)
    parts = ConMLObjective(case.settings)(learner, batch)
    reference = case.reference(learner, batch)
    d_in, d_out = reference.distances(case.settings)
    for name, expected in {"episodic": reference.episodic, "d_in": d_in, "d_out": d_out}.items():
        got = getattr(parts, name).item()
        assert abs(got - expected.item()) < case.value_tolerance, f"{name}: {got!r} != {expected.item()!r}"
    combined = parts.episodic.item() + case.settings.lam * (parts.d_in.item() - parts.d_out.item())
    assert abs(parts.total.item() - combined) < case.value_tolerance
    assert abs(d_out.item() - d_in.item()) > 1e-6, "degenerate case: d_in and d_out agree"


def test_gradients_match_the_per_task_reference(case, learner):
    """Gradients of L_e, lambda * d_in and lambda * d_out, each on its own, for every meta-parameter."""
    batch, lam = batch_of(case), case.settings.lam
    params = meta_parameters(learner)
    parts = ConMLObjective(case.settings)(learner, batch)
    reference = case.reference(learner, batch)
    d_in, d_out = reference.distances(case.settings)
    terms = {
        "episodic": (parts.episodic, reference.episodic),
        "lambda*d_in": (lam * parts.d_in, lam * d_in),
        "lambda*d_out": (lam * parts.d_out, lam * d_out),
    }
    for term, (ours, theirs) in terms.items():
        got, expected = gradients(ours, params), gradients(theirs, params)
        scale = max(g.abs().max().item() for g in expected.values())
        assert scale > 0 or term != "episodic", "degenerate case: the episodic gradient is zero"
        for name in params:
            torch.testing.assert_close(
                got[name],
                expected[name],
                rtol=case.gradient_rtol,
                atol=case.gradient_rtol * scale,
                msg=lambda m: f"{term}, {name}: {m}",
            )
            if term == "episodic":
                continue
            # Not detached where psi depends on the parameter, and nothing where it does not.
            unused = any(fnmatch.fnmatchcase(name, pattern) for pattern in case.no_conml_gradient)
            size = max(got[name].abs().max().item(), expected[name].abs().max().item())
            if unused:
                assert size <= 1e-2 * case.gradient_rtol * scale, (
                    f"{term}: {name} gets a gradient ({size:.1e} of {scale:.1e})"
                )
            else:
                assert size > 1e-6 * scale, f"{term}: {name} gets no gradient ({size:.1e} of {scale:.1e})"


def test_simple_cnaps_frozen_resnet_is_no_meta_parameter(tmp_path):
    """The frozen extractor gets no gradient at all; set encoder and FiLM generator get ConML's."""
    case = CASES["simple_cnaps"]
    torch.manual_seed(0)
    learner = case.learner(tmp_path).double()
    assert not any(p.requires_grad for p in learner.net.parameters())
    parts = ConMLObjective(case.settings)(learner, batch_of(case))
    (parts.d_in - parts.d_out).backward()
    assert all(p.grad is None for p in learner.net.parameters())
    assert all(p.grad is not None for p in [*learner.set_encoder.parameters(), *learner.film.parameters()])


def test_icl_keeps_float64(tmp_path):
    case = CASES["icl"]
    torch.manual_seed(0)
    learner, batch = case.learner(tmp_path).double(), batch_of(case)
    parts = ConMLObjective(case.settings)(learner, batch)
    prediction = learner.predict(learner.adapt(batch.support, Adaptation.meta_train), batch.query.x)
    assert {prediction.dtype, parts.d_in.dtype, parts.d_out.dtype} == {torch.float64}


def objective_views(case: Case, learner: Learner, batch: EpisodeBatch) -> tuple[Tensor, Tensor, Tensor]:
    """(episodic loss, psi of the kappa models [B, d], psi of the whole-task models [B, d]) as the objective builds them."""
    episode = learner.episodic_loss_with_prefixes(batch, [batch.whole.num_examples], Adaptation.meta_train)
    whole = episode.prefixes[0]
    if case.settings.subset == SubsetStrategy.support:
        support = (
            episode.support if episode.support is not None else learner.adapt(batch.support, Adaptation.meta_train)
        )
        kappa = learner.represent(support, batch)
    else:
        kappa = learner.represent(
            learner.adapt(ConMLObjective(case.settings).subsets(batch)[0], Adaptation.meta_train), batch
        )
    return episode.loss, kappa, whole


def single_task(batch: EpisodeBatch, t: int) -> EpisodeBatch:
    pick = lambda tasks: Tasks(tasks.x[t : t + 1], tasks.y[t : t + 1])  # noqa: E731
    return EpisodeBatch(pick(batch.support), pick(batch.query), batch.probe)


def test_a_task_does_not_depend_on_the_other_tasks(case, learner):
    """Per-task BatchNorm statistics: psi and loss of a task are those it has alone in a batch,
    even when the other tasks' inputs are on another scale."""
    batch = batch_of(case)
    shift = lambda tasks: Tasks(torch.cat([tasks.x[:1], 10 * tasks.x[1:] + 3]), tasks.y)  # noqa: E731
    batch = EpisodeBatch(shift(batch.support), shift(batch.query), batch.probe)
    episodic, kappa, whole = objective_views(case, learner, batch)
    alone = [objective_views(case, learner, single_task(batch, t)) for t in range(batch.num_tasks)]
    tolerance = {"rtol": case.value_tolerance, "atol": 1e-2 * case.value_tolerance}
    torch.testing.assert_close(episodic, torch.stack([a[0] for a in alone]).mean(), **tolerance)
    torch.testing.assert_close(kappa, torch.cat([a[1] for a in alone]), **tolerance)
    torch.testing.assert_close(whole, torch.cat([a[2] for a in alone]), **tolerance)


def poison_running_statistics(learner: Learner) -> int:
    """Give every BatchNorm absurd running statistics (adding them where it keeps none); the number changed."""
    changed = 0
    for module in learner.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            features = module.num_features
            module.track_running_stats = True
            module.register_buffer("running_mean", torch.full((features,), 100.0, dtype=torch.float64))
            module.register_buffer("running_var", torch.full((features,), 1e-4, dtype=torch.float64))
            module.register_buffer("num_batches_tracked", torch.tensor(1000))
            changed += 1
    return changed


def test_psi_is_not_computed_from_running_statistics(case, learner):
    """In training mode psi comes from each task's own batch statistics, whatever running ones hold."""
    batch = batch_of(case)
    learner.train()
    _, kappa, whole = objective_views(case, learner, batch)
    assert poison_running_statistics(learner) > 0 or isinstance(learner, InContextLearner)
    _, poisoned_kappa, poisoned_whole = objective_views(case, learner, batch)
    torch.testing.assert_close(poisoned_kappa, kappa, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(poisoned_whole, whole, rtol=1e-12, atol=1e-14)


def test_repeating_the_batch_keeps_d_in_and_changes_d_out_by_the_definition(case, learner):
    """Each task twice: d_in, L_e and grad d_in stay; the B(B-1) ordered pairs become 2B(2B-1), with 2B self-pairs."""
    batch = batch_of(case)
    twice = lambda tasks: Tasks(torch.cat([tasks.x, tasks.x]), torch.cat([tasks.y, tasks.y]))  # noqa: E731
    doubled = EpisodeBatch(twice(batch.support), twice(batch.query), batch.probe)
    objective, params = ConMLObjective(case.settings), meta_parameters(learner)
    once, both = objective(learner, batch), objective(learner, doubled)
    e_star = case.reference(learner, batch).whole
    self_distance = PHI[case.settings.phi](e_star[0], e_star[0]).item()  # 0 for cosine, 1/2 for sigmoid_squared
    b = batch.num_tasks
    expected_d_out = (4 * b * (b - 1) * once.d_out.item() + 2 * b * self_distance) / (2 * b * (2 * b - 1))
    assert abs(both.d_in.item() - once.d_in.item()) < case.value_tolerance
    assert abs(both.episodic.item() - once.episodic.item()) < case.value_tolerance
    assert abs(both.d_out.item() - expected_d_out) < case.value_tolerance
    assert abs(both.d_out.item() - once.d_out.item()) > 1e-4 * once.d_out.item(), (
        "degenerate case: repeating changed nothing"
    )
    single = gradients(once.d_in, params)
    for name, g in gradients(both.d_in, params).items():
        torch.testing.assert_close(g, single[name], rtol=case.gradient_rtol, atol=1e-14)
