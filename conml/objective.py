"""The ConML meta-objective: L = L_e + lambda * (d_in - d_out).

This is the only module that knows about ConML. It asks the learner for task models learned from
subsets of each task and from the whole task (support ∪ query), maps them to vectors with the
learner's `represent` (psi), and adds the contrastive term to the learner's own episodic loss.
With K = 1 and the support set as the subset it reuses the support-set models that the episodic
loss already built and returned ("Efficient ConML"), so the only extra work is one adaptation per task.
Adaptations are for meta-training (`Adaptation.meta_train`) unless a caller asks for a pass without a graph.
e* and prefix subsets (conml.subset=prefix) are asked for together with the episodic loss, as
representations of prefixes of each whole task, so that a learner that reads them off the same
pass (in-context learning) can.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Optional

import torch
from torch import Tensor

from conml.distances import Distance
from conml.distributed import TaskShard
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.learners.base import Adaptation, Episode, Learner


class SubsetStrategy(str, Enum):
    """How the subsets kappa of a task are drawn (pi_kappa)."""

    support = "support"  # kappa = the support set; reuses the support-set models (K must be 1)
    random = "random"  # kappa_k = a random subset of support ∪ query, per task and per k
    prefix = "prefix"  # kappa = the first examples of support ∪ query (a prompt prefix)


class Centring(str, Enum):
    """What is subtracted from every representation before phi.

    `meta_batch`: e <- e - mean_{tau in b} e*_tau, the mean whole-task representation of the meta-batch
    (all processes), for e^kappa and e* alike. It keeps the learner's psi but removes what all tasks of
    the meta-batch share: MAML's adapted weights theta - alpha*g_tau become -alpha*(g_tau - mean g), whose
    cosine distances are O(1) instead of O((alpha*|g| / |theta|)^2). The mean carries gradient, so for a
    learner whose psi depends on theta only through a shared shift (FOMAML, Reptile) ConML then has no
    gradient path at all.
    """

    none = "none"
    meta_batch = "meta_batch"


class Terms(str, Enum):
    """Which contrastive terms are optimised: both, or one of them as an ablation."""

    both = "both"
    alignment = "alignment"  # L_e + lambda * d_in  ("in-" ablation)
    discrimination = "discrimination"  # L_e - lambda * d_out  ("out-" ablation)


@dataclass
class ConMLSettings:
    """ConML's settings; `enabled: false` trains the plain meta-learner through the same code."""

    enabled: bool = True
    lam: float = 0.1
    phi: Distance = Distance.cosine
    num_subsets: int = 1
    subset: SubsetStrategy = SubsetStrategy.support
    # Size of random/prefix subsets as a fraction of support ∪ query; None: the support size.
    subset_fraction: Optional[float] = None
    terms: Terms = Terms.both
    centring: Centring = Centring.none


@dataclass
class LossParts:
    """The meta-training loss and its parts, kept apart for logging.

    When a meta-batch is spread over processes, these are this process's shares: their sum over
    processes is the loss of the whole meta-batch.
    """

    total: Tensor
    episodic: Tensor
    d_in: Tensor | None = None
    d_out: Tensor | None = None
    # lambda * (d_in - d_out), or its one optimised term in an ablation: total = episodic + contrastive.
    contrastive: Tensor | None = None


@dataclass
class TaskTerms:
    """What some tasks of a meta-batch give on their own; tasks meet only in `ConMLObjective.contrastive`.

    `episodic` is the learner's L_e of these tasks (a mean over them), `whole` their e* [tasks, d]
    and `subsets` their e^kappa_k [tasks, d] for each k (empty when d_in is not optimised); `whole`
    is None when ConML is off.
    """

    episodic: Tensor
    whole: Tensor | None = None
    subsets: list[Tensor] = field(default_factory=list)


class ConMLObjective:
    """Builds the meta-training loss of one meta-batch for any learner."""

    def __init__(
        self,
        settings: ConMLSettings,
        shard: TaskShard = TaskShard(),
        forward_context: Callable[[], AbstractContextManager] = nullcontext,
    ):
        """`forward_context` is the context every forward pass of the loss runs in (bf16 autocast on CUDA, set by
        `conml.performance.apply_performance`); backward passes run outside it, as autocast requires."""
        self.settings, self.shard, self.forward_context = settings, shard, forward_context
        if settings.num_subsets < 1:
            raise ConfigError(f"conml.num_subsets must be at least 1, got {settings.num_subsets}.")
        if settings.subset == SubsetStrategy.support and settings.num_subsets != 1:
            raise ConfigError(
                "conml.subset=support gives the same subset every time, so conml.num_subsets must be 1 "
                f"(got {settings.num_subsets}); use conml.subset=random to draw several subsets per task."
            )
        fraction = settings.subset_fraction
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise ConfigError(f"conml.subset_fraction must lie in (0, 1], got {fraction}.")

    def __call__(self, learner: Learner, batch: EpisodeBatch) -> LossParts:
        with self.forward_context():
            terms = self.task_terms(learner, batch, Adaptation.meta_train)
            episodic = (1.0 / self.shard.world_size) * terms.episodic
            if terms.whole is None:
                return LossParts(episodic, episodic)
            contrastive, d_in, d_out = self.contrastive(terms.whole, terms.subsets)
            return LossParts(episodic + contrastive, episodic, d_in, d_out, contrastive)

    def task_terms(
        self, learner: Learner, batch: EpisodeBatch, mode: Adaptation, kappas: list[Tasks] | None = None
    ) -> TaskTerms:
        """What each task of `batch` contributes on its own; `kappas`: its random subsets, drawn beforehand
        (prefix subsets are lengths, and the support set is the batch's). Every task model is adapted with
        `mode`: `meta_train` for a loss to back-propagate, `meta_test` for a pass without a graph.

        L_e comes with the representations of prefixes of each whole task (`Learner.episodic_loss_with_prefixes`):
        e* (the whole task) and, when kappa is a prefix, the K e^kappa, so that a learner can read them
        off the pass that gives L_e.
        """
        episode = learner.episodic_loss_with_prefixes(batch, self._prefix_lengths(batch), mode)
        if not self.settings.enabled:
            return TaskTerms(episode.loss)
        whole, prefix_subsets = episode.prefixes[0], episode.prefixes[1:]
        if self.aligns and self.settings.subset != SubsetStrategy.prefix:
            return TaskTerms(episode.loss, whole, self._subset_representations(learner, batch, episode, mode, kappas))
        return TaskTerms(episode.loss, whole, prefix_subsets)

    def contrastive(self, whole: Tensor, subsets: list[Tensor]) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(lambda * (d_in - d_out) or its one optimised term, d_in, d_out): this process's shares, from its
        tasks' e* [b, d] and e^kappa_k [b, d]. The only place where the tasks of a meta-batch meet."""
        settings, share = self.settings, 1.0 / self.shard.world_size
        centre = self._centre(whole)
        e_star = whole - centre
        contrastive, d_in, d_out = e_star.new_zeros(()), None, None
        if settings.terms != Terms.discrimination:
            centred = [e - centre for e in subsets]
            d_in = share * torch.stack([settings.phi.rows(e, e_star).mean() for e in centred]).mean()
            contrastive = contrastive + settings.lam * d_in
        if settings.terms != Terms.alignment:
            d_out = self._discrimination(e_star)
            contrastive = contrastive - settings.lam * d_out
        return contrastive, d_in, d_out

    @property
    def aligns(self) -> bool:
        """Whether d_in is optimised, so the subsets kappa are needed."""
        return self.settings.enabled and self.settings.terms != Terms.discrimination

    @property
    def draws_subsets(self) -> bool:
        """Whether the subsets kappa are data drawn from each task (not the support-set models reused)."""
        return self.aligns and self.settings.subset != SubsetStrategy.support

    def _centre(self, e_star: Tensor) -> Tensor:
        """The point every representation is measured from (see `Centring`)."""
        if self.settings.centring == Centring.none:
            return e_star.new_zeros(())
        return self.shard.gather(e_star).mean(0)

    def _discrimination(self, e_star: Tensor) -> Tensor:
        """This process's rows of mean_{i != j} phi(e*_i, e*_j) over all tasks of the meta-batch."""
        everyone = self.shard.gather(e_star)
        local, total = e_star.shape[0], everyone.shape[0]
        if total < 2:
            return e_star.new_zeros(())
        distances = self.settings.phi.pairs(e_star, everyone)
        own = torch.arange(local, device=e_star.device)
        distances = distances.index_put((own, own + self.shard.rank * local), distances.new_zeros(()))
        return distances.sum() / (total * (total - 1))

    def _prefix_lengths(self, batch: EpisodeBatch) -> list[int]:
        """The prefixes of each whole task whose representations come with L_e: none when ConML is off;
        else the whole task (e*), then the K prefixes kappa when conml.subset=prefix (all K alike, as `subsets` draws them)."""
        if not self.settings.enabled:
            return []
        lengths = [batch.whole.num_examples]
        if self.aligns and self.settings.subset == SubsetStrategy.prefix:
            lengths += [self._subset_size(batch)] * self.settings.num_subsets
        return lengths

    def _subset_representations(
        self, learner: Learner, batch: EpisodeBatch, episode: Episode, mode: Adaptation, kappas: list[Tasks] | None
    ) -> list[Tensor]:
        """e^kappa_k of subsets that are not prefixes: the support-set models (those L_e built, if it did), or random subsets."""
        if self.settings.subset == SubsetStrategy.support:
            support = episode.support if episode.support is not None else learner.adapt(batch.support, mode)
            return [learner.represent(support, batch)]
        kappas = self.subsets(batch) if kappas is None else kappas
        return [learner.represent(learner.adapt(kappa, mode), batch) for kappa in kappas]

    def subsets(self, batch: EpisodeBatch) -> list[Tasks]:
        """The K subsets kappa of every task, drawn from support ∪ query."""
        whole = batch.whole
        size = self._subset_size(batch)
        if self.settings.subset == SubsetStrategy.prefix:
            return [whole.first(size)] * self.settings.num_subsets
        # Random subsets use the global RNG, which is seeded and checkpointed with the run.
        scores = torch.rand(self.settings.num_subsets, whole.num_tasks, whole.num_examples, device=whole.x.device)
        return [whole.take(s.argsort(dim=1)[:, :size]) for s in scores]

    def _subset_size(self, batch: EpisodeBatch) -> int:
        fraction = self.settings.subset_fraction
        if fraction is None:
            return batch.support.num_examples
        return max(1, int(fraction * batch.whole.num_examples))
