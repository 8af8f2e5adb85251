"""Exact meta-gradients of a meta-batch taken a few tasks at a time (`trainer.task_chunk`).

The meta-objective of a meta-batch is L = sum_tau w_tau L_e(tau) + C(E*, E^kappa): per-task episodic
losses plus a contrastive term C that couples the tasks (d_out compares every pair, meta-batch
centring subtracts the mean e*) only through their representations, a few vectors per task. So

    grad L = sum_tau w_tau grad L_e(tau) + sum_tau <dC/de*_tau, grad e*_tau> + (the same for e^kappa),

and once dC/dE is known, each term needs the graph of its own task alone. A chunked step:

1. builds every chunk's e* and e^kappa without a graph (torch.no_grad, `Adaptation.meta_test`), chunk by chunk;
2. evaluates C on leaf copies of them, with the processes' representations gathered as in an
   unchunked step, and takes G = dC/dE for this process's tasks (B x d numbers: cheap);
3. rebuilds each chunk with a graph and back-propagates its share of the episodic loss plus
   <G_chunk, e_chunk>, which accumulates exactly the unchunked meta-gradient in `.grad`.

Peak memory is then one chunk's graph plus the representations, at the cost of one more forward
pass without a graph. Learners' episodic losses are means over the tasks they are given, so a
chunk of c of this process's b tasks weighs c/b. Random subsets kappa are drawn once for the
whole meta-batch, as an unchunked step draws them; both passes of a chunk see the same random
state (dropout), and the pass without a graph leaves buffers (BatchNorm running statistics) as it
found them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.learners.base import Adaptation, Learner
from conml.objective import ConMLObjective, LossParts, TaskTerms

AUTO = "auto"


def check_task_chunk(task_chunk: Any, meta_batch_size: int, world_size: int) -> None:
    """Refuse a `trainer.task_chunk` that cannot work, with the values that can (`world_size`: the processes the
    meta-batch is shared by)."""
    local = max(1, meta_batch_size // world_size)
    per_process = f" per process ({meta_batch_size} over {world_size} processes)" if world_size > 1 else ""
    valid = task_chunk in (None, AUTO) or (
        isinstance(task_chunk, int) and not isinstance(task_chunk, bool) and 1 <= task_chunk <= local
    )
    if not valid:
        raise ConfigError(
            f"trainer.task_chunk={task_chunk!r} cannot be used: it is the number of tasks whose graphs are built at once, "
            f"so it must be an integer from 1 to the meta-batch{per_process}, {local} here; or null (the whole meta-batch at "
            f"once, the default), or auto (the largest chunk that fits trainer.memory_budget_gb, measured on the GPU). "
            "Every choice gives the same meta-gradient; smaller chunks need less memory and take longer."
        )


def chunks(count: int, size: int) -> list[slice]:
    """Consecutive task ranges of at most `size` tasks covering `count` tasks."""
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def task_range(batch: EpisodeBatch, part: slice) -> EpisodeBatch:
    """The tasks `part` of a meta-batch (the probe and info are the batch's)."""
    return EpisodeBatch(_tasks(batch.support, part), _tasks(batch.query, part), batch.probe, batch.info)


def _tasks(tasks: Tasks, part: slice) -> Tasks:
    return Tasks(tasks.x[part], tasks.y[part], None if tasks.mask is None else tasks.mask[part])


def chunked_backward(
    objective: ConMLObjective,
    learner: Learner,
    batch: EpisodeBatch,
    size: int,
    measured: list[Tensor] | None = None,
) -> tuple[LossParts, list[Tensor] | None]:
    """Accumulate this process's share of the meta-gradient in `.grad`, `size` tasks at a time.

    Returns the loss parts (detached, as an unchunked step would log them) and, when `measured`
    parameters are given, this process's gradient of the contrastive term for each of them
    (None when that term does not depend on any parameter).
    """
    count = batch.num_tasks
    parts = chunks(count, size)
    kappas = objective.subsets(batch) if objective.draws_subsets else None
    device = batch.support.x.device

    with torch.no_grad():
        states, representations = _representations_without_graph(objective, learner, batch, parts, kappas)
    contrastive, d_in, d_out, pulls_of = _contrastive_gradients(objective, representations)

    share = 1.0 / objective.shard.world_size
    episodic_parts = []
    measured = None if measured is None else [p for p in measured if p.requires_grad]
    pulls: list[Tensor] | None = None
    for part, state in zip(parts, states):
        if state is not None:  # the random state of this chunk's pass without a graph
            _set_rng_state(state, device)
        terms = _chunk_terms(objective, learner, batch, part, kappas, Adaptation.meta_train)
        episodic = (share * (part.stop - part.start) / count) * terms.episodic
        pull = sum(
            ((g[part] * e).sum() for g, e in zip(pulls_of, [terms.whole, *terms.subsets]) if g is not None),
            episodic.new_zeros(()),
        )
        if measured is not None and pull.requires_grad:
            grads = torch.autograd.grad(pull, measured, retain_graph=True, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(measured, grads)]
            pulls = grads if pulls is None else [a + b for a, b in zip(pulls, grads)]
        (episodic + pull).backward()
        episodic_parts.append(episodic.detach())

    episodic_total = sum(episodic_parts[1:], episodic_parts[0])
    if contrastive is None:
        return LossParts(episodic_total, episodic_total), None
    return LossParts(episodic_total + contrastive, episodic_total, d_in, d_out, contrastive), pulls


def _representations_without_graph(
    objective: ConMLObjective,
    learner: Learner,
    batch: EpisodeBatch,
    parts: list[slice],
    kappas: list[Tasks] | None,
) -> tuple[list, list[Tensor] | None]:
    """Each chunk's random state before its pass, and the batch's [e*, e^kappa_1, ...]; (Nones, None) when ConML is off."""
    device = batch.support.x.device
    states = []
    if not objective.settings.enabled:
        return [None] * len(parts), None
    buffers = [b.clone() for b in learner.buffers()]
    pieces = []
    for part in parts:
        states.append(_rng_state(device))
        terms = _chunk_terms(objective, learner, batch, part, kappas, Adaptation.meta_test)
        pieces.append([terms.whole, *terms.subsets])
    for buffer, saved in zip(learner.buffers(), buffers):
        buffer.copy_(saved)
    widths = {piece[0].shape[1:] for piece in pieces}
    if len(widths) > 1:
        raise ConfigError(
            f"trainer.task_chunk: the learner's representations of different chunks have different shapes {sorted(widths)}, "
            "so they cannot be compared as in one meta-batch; use trainer.task_chunk=null for this learner and data."
        )
    return states, [torch.cat(column) for column in zip(*pieces)]


def _contrastive_gradients(objective: ConMLObjective, representations: list[Tensor] | None) -> tuple:
    """(contrastive, d_in, d_out, [dC/de*, dC/de^kappa_k...]) from the representations of the whole meta-batch."""
    if representations is None:
        return None, None, None, []
    leaves = [r.detach().requires_grad_() for r in representations]
    with torch.enable_grad(), objective.forward_context():
        contrastive, d_in, d_out = objective.contrastive(leaves[0], leaves[1:])
    if contrastive.requires_grad:
        grads = torch.autograd.grad(contrastive, leaves, allow_unused=True)
    else:  # no term depends on the representations (d_out of a single task)
        grads = [None] * len(leaves)
    detached = lambda t: None if t is None else t.detach()  # noqa: E731
    return contrastive.detach(), detached(d_in), detached(d_out), list(grads)


def _chunk_terms(
    objective: ConMLObjective,
    learner: Learner,
    batch: EpisodeBatch,
    part: slice,
    kappas: list[Tasks] | None,
    mode: Adaptation,
) -> TaskTerms:
    """The tasks `part` through the learner, with their share of the subsets drawn for the whole meta-batch;
    `mode`: meta_test for the pass without a graph, meta_train for the one that back-propagates."""
    with objective.forward_context():
        return objective.task_terms(
            learner,
            task_range(batch, part),
            mode,
            None if kappas is None else [_tasks(kappa, part) for kappa in kappas],
        )


def _rng_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state: tuple[Tensor, Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)
