"""In-context learning behind the learner seam (Garg et al. 2022; ConML Sec. 4).

A sequence model T reads prompts [x_1, y_1, ..., x_k, y_k, x] (each y written into the first
coordinate of an otherwise zero token) and answers with its output at x. So

- adapt(D) is conditioning on the prompt D: the task model is the prompt itself, and the
  conditioning happens in the forward pass that reads a prediction off it;
- predict(D, x) = T([D, x]) for every query x on its own;
- represent(D) = T([D, u]) at the probe u that the batch shares: psi(g(D)) = g([D, u]);
- the episodic loss is the squared error at every x_i of the whole prompt given the pairs
  before it (the mean over all prefixes), which one causal pass computes at once.

ConML needs psi of the whole prompt (e*) and of its first floor(n/2) pairs (e^kappa). Under causal
attention the hidden states of a prefix are those of the first tokens of the whole prompt, so
`episodic_loss_with_prefixes` reads them all in the pass that gives the loss: after the 2n prompt
tokens come one probe token per prefix length l, each at position 2l and attending only to the
first 2l tokens and itself (the net's reader tokens, `conml.nets.gpt2`). ConML then costs a few
tokens, not a second pass. The net must take `net(tokens, readers=...)` for that path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from conml.episodes import EpisodeBatch, Tasks
from conml.learners.base import Adaptation, Episode, Learner
from conml.task_kind import TaskKind


@dataclass(eq=False)
class Prompt:
    """The task model of an in-context learner: the prompt it conditions on."""

    context: Tasks


class InContextLearner(Learner):
    """Wraps a causal sequence model over vector tokens (e.g. conml.nets.gpt2.GPT2).

    `mixed_precision` runs the model under bf16 autocast on CUDA (weights, loss and outputs stay
    fp32); on the CPU the model always runs in fp32.
    """

    def __init__(self, net: nn.Module, kind: TaskKind, mixed_precision: bool):
        super().__init__(kind)
        self.net = net
        self.mixed_precision = mixed_precision

    def adapt(self, tasks: Tasks, mode: Adaptation) -> Prompt:
        return Prompt(tasks)

    def predict(self, models: Prompt, x: Tensor) -> Tensor:
        context = interleave(models.context)
        tasks, queries = x.shape[:2]
        # Every query gets its own copy of the prompt, so no query sees another.
        prompts = context.unsqueeze(1).expand(tasks, queries, *context.shape[1:])
        sequences = torch.cat([prompts, x.unsqueeze(2)], dim=2).flatten(0, 1)
        return self._run(sequences)[:, -1].view(tasks, queries, -1)

    def represent(self, models: Prompt, batch: EpisodeBatch) -> Tensor:
        probe = batch.probe.expand(batch.num_tasks, 1, -1)
        return self.predict(models, probe)[:, 0]

    def prefix_predictions(self, tasks: Tasks, probe: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
        """Predictions [B, n, out] at each x_i given the pairs before it, in one pass.

        With a probe u, also the prediction [B, out] at u given all n pairs.
        """
        lengths = [] if probe is None else [tasks.num_examples]
        predictions, readings = self.read_prompt(tasks, probe, lengths)
        return predictions, None if probe is None else readings[0]

    def read_prompt(self, tasks: Tasks, probe: Optional[Tensor], lengths: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
        """One pass over whole prompts: the predictions [B, n, out] at each x_i given the pairs before it,
        and for each l in `lengths` the prediction [B, out] at the probe given the first l pairs."""
        tokens = interleave(tasks)
        points = tasks.num_examples
        if not lengths:
            outputs = self._run(tokens[:, :-1])  # the last y is an answer, never a context
            return outputs[:, 0::2], []
        probes = probe.expand(tasks.num_tasks, len(lengths), -1)
        outputs = self._run(torch.cat([tokens, probes], dim=1), readers=[2 * length for length in lengths])
        return outputs[:, 0 : 2 * points : 2], list(outputs[:, 2 * points :].unbind(1))

    def episodic_loss(self, batch: EpisodeBatch, mode: Adaptation) -> Episode:
        return self.episodic_loss_with_prefixes(batch, [], mode)

    def episodic_loss_with_prefixes(self, batch: EpisodeBatch, lengths: Sequence[int], mode: Adaptation) -> Episode:
        """Garg's loss on the whole prompt and psi of its prefixes (`Learner`'s contract), in one pass."""
        whole = self.adapt(batch.whole, mode)
        predictions, readings = self.read_prompt(whole.context, batch.probe, lengths)
        return Episode(self.kind.loss(predictions, whole.context.y).mean(), whole=whole, prefixes=readings)

    def _run(self, tokens: Tensor, readers: Sequence[int] = ()) -> Tensor:
        enabled = self.mixed_precision and tokens.is_cuda
        with torch.autocast(device_type=tokens.device.type, dtype=torch.bfloat16, enabled=enabled):
            # back from bf16 under autocast; float64 stays float64
            return (self.net(tokens, readers=readers) if readers else self.net(tokens)).to(tokens.dtype)


def interleave(tasks: Tasks) -> Tensor:
    """[x_1, y_1, ..., x_n, y_n] as tokens [B, 2n, d]: each y in the first coordinate of a zero token."""
    x, y = tasks.x, tasks.y
    y_tokens = torch.cat([y, y.new_zeros(*y.shape[:2], x.shape[2] - y.shape[2])], dim=2)
    return torch.stack([x, y_tokens], dim=2).flatten(1, 2)
