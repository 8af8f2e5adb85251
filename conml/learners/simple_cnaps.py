"""Simple CNAPs (Bateni et al. 2020): a FiLM-adapted feature extractor and a Mahalanobis-distance classifier.

adapt(D): the set encoder embeds D's images into z, the FiLM generator maps z to FiLM parameters
H(D) for every block of the (frozen, pretrained) ResNet-18, and D's adapted features give each
class a mean mu_k and a regularised covariance Q_k = l_k S_k + (1 - l_k) S_task + I with
l_k = n_k / (n_k + 1). predict: logit_k(x) = -(f(x) - mu_k)^T Q_k^{-1} (f(x) - mu_k), without the
1/2 that the released code also drops. psi = H(D), the concatenated FiLM parameters: ConML's
representation of an amortisation-based learner, with the same size whatever the way.

Tasks of a batch run together: images of all tasks are flattened (padding dropped) and every image
carries its task's FiLM parameters; classes absent from a task (padded ways) get logit -inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.learners.base import Adaptation, Episode, Learner
from conml.nets.film import FilmGenerator
from conml.nets.resnet18 import FilmResNet18
from conml.nets.set_encoder import SetEncoder
from conml.task_kind import CLASSIFICATION, TaskKind


@dataclass(frozen=True)
class MahalanobisClassifier:
    """Per task and class: mean [B, W, d], Cholesky factor of Q_k [B, W, d, d], and whether the class exists [B, W]."""

    means: Tensor
    factors: Tensor
    present: Tensor

    def logits(self, features: Tensor) -> Tensor:
        """Negative squared Mahalanobis distances [B, m, W] of features [B, m, d] to every class."""
        diff = features[:, None] - self.means[:, :, None]
        whitened = torch.linalg.solve_triangular(self.factors, diff.transpose(-1, -2), upper=False)
        distances = whitened.pow(2).sum(-2).transpose(1, 2)
        return (-distances).masked_fill(~self.present[:, None, :], float("-inf"))


@dataclass(frozen=True)
class FilmTaskModels:
    """Each task's FiLM parameters and the data they were generated from, which the classifier is fitted to
    when the models predict (`SimpleCNAPs.predict`): ConML only needs the FiLM parameters of the support ∪ query
    models, so their classifier is never fitted."""

    film: list[Tensor]
    data: Tasks


class SimpleCNAPs(Learner):
    """Simple CNAPs over a `FilmResNet18` (the `net`); the set encoder and FiLM generator are meta-learned.

    `film_l2` weighs CNAPs' FiLM regulariser, added once per meta-batch to the mean query loss (the
    released code adds 0.001 of it to each of 16 accumulated tasks). `representation` is psi: the
    FiLM parameters themselves (`film`, the paper's H(D)) or their offset from the identity
    (`offset`: gamma - 1, beta).
    """

    representations = ("film", "offset")
    builds_models_from_labels = True

    def __init__(
        self,
        net: FilmResNet18,
        kind: TaskKind,
        set_encoder_width: int,
        film_l2: float,
        representation: str,
    ):
        super().__init__(kind)
        if kind is not CLASSIFICATION:
            raise ConfigError(
                f"Simple CNAPs is a classifier; dataset '{kind.name}' tasks cannot use learner=simple_cnaps."
            )
        if representation not in self.representations:
            raise ConfigError(
                f"learner.representation must be one of {list(self.representations)}, got '{representation}'."
            )
        if not isinstance(net, FilmResNet18):
            raise ConfigError(
                f"learner=simple_cnaps needs a FiLM feature extractor (model=resnet18_film*), got {type(net).__name__}."
            )
        self.net = net
        self.set_encoder = SetEncoder(set_encoder_width)
        self.film = FilmGenerator(self.set_encoder.out_features, net.film_layout)
        self.film_l2, self.representation = film_l2, representation

    def adapt(self, tasks: Tasks, mode: Adaptation) -> FilmTaskModels:
        images, task = _real_images(tasks.x, tasks.mask)
        z = self.set_encoder(images, task, tasks.num_tasks)
        return FilmTaskModels(self.film(z), tasks)

    def predict(self, models: FilmTaskModels, x: Tensor) -> Tensor:
        return self._logits(models, x, None)

    def represent(self, models: FilmTaskModels, batch: EpisodeBatch) -> Tensor:
        film = FilmGenerator.identity_offset(models.film) if self.representation == "offset" else models.film
        return torch.cat([f.flatten(1) for f in film], dim=1)

    def episodic_loss(self, batch: EpisodeBatch, mode: Adaptation) -> Episode:
        support = self.adapt(batch.support, mode)
        logits = self._logits(support, batch.query.x, batch.query.mask)
        query_loss = self.kind.loss(logits, batch.query.y, batch.query.mask).mean()
        return Episode(query_loss + self.film_l2 * self.film.regularization(), support=support)

    def evaluate(self, batch: EpisodeBatch) -> Tensor:
        models = self.adapt(batch.support, Adaptation.meta_test)
        logits = self._logits(models, batch.query.x, batch.query.mask)
        return self.kind.metric(logits, batch.query.y, batch.query.mask)

    def fit_classifier(self, film: list[Tensor], data: Tasks) -> MahalanobisClassifier:
        features = self.features(film, data.x, data.mask)
        return fit_mahalanobis(features, data.y, data.mask, int(data.y.max()) + 1)

    def features(self, film: list[Tensor], x: Tensor, mask: Tensor | None) -> Tensor:
        """FiLM-adapted features [B, n, d] of each task's images; zero where x is padding."""
        images, task = _real_images(x, mask)
        computed = self.net(images, [f[task] for f in film])
        if mask is None:
            return computed.view(*x.shape[:2], -1)
        rows = mask.flatten().nonzero().squeeze(1)
        return computed.new_zeros(mask.numel(), computed.shape[1]).index_copy(0, rows, computed).view(*x.shape[:2], -1)

    def _logits(self, models: FilmTaskModels, x: Tensor, mask: Tensor | None) -> Tensor:
        classifier = self.fit_classifier(models.film, models.data)
        return classifier.logits(self.features(models.film, x, mask))


def _real_images(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """The images of a [B, n, ...] batch that are not padding, flattened, with the index of their task."""
    task = torch.arange(x.shape[0], device=x.device).repeat_interleave(x.shape[1])
    images = x.flatten(0, 1)
    if mask is None:
        return images, task
    rows = mask.flatten().nonzero().squeeze(1)
    return images[rows], task[rows]


def fit_mahalanobis(features: Tensor, y: Tensor, mask: Tensor | None, ways: int) -> MahalanobisClassifier:
    """Class means and regularised covariances of Simple CNAPs from labelled features [B, n, d].

    Covariances are unbiased estimates; a class with one example has none, so its Q_k is
    S_task / 2 + I (the released code instead mixes in the variance of that one feature vector's
    entries). Features are centred on the task mean first, for numerical stability.
    """
    real = (
        torch.ones(y.shape, dtype=features.dtype, device=features.device) if mask is None else mask.to(features.dtype)
    )
    weights = F.one_hot(y, ways).to(features.dtype) * real[..., None]
    counts, total = weights.sum(1), real.sum(1)
    task_mean = (features * real[..., None]).sum(1) / total[:, None]
    centred = (features - task_mean[:, None]) * real[..., None]
    task_cov = torch.einsum("bnd,bne->bde", centred, centred) / (total - 1).clamp_min(1)[:, None, None]
    offsets = torch.einsum("bnw,bnd->bwd", weights, centred) / counts.clamp_min(1)[..., None]
    scatter = (
        torch.einsum("bnw,bnd,bne->bwde", weights, centred, centred)
        - counts[..., None, None] * offsets[..., :, None] * offsets[..., None, :]
    )
    class_cov = scatter / (counts - 1).clamp_min(1)[..., None, None]
    mix = (counts / (counts + 1))[..., None, None]
    identity = torch.eye(features.shape[-1], dtype=features.dtype, device=features.device)
    covariance = mix * class_cov + (1 - mix) * task_cov[:, None] + identity
    return MahalanobisClassifier(task_mean[:, None] + offsets, torch.linalg.cholesky(covariance), counts > 0)
