"""In-context learning behind the learner seam (Garg et al. 2022; ConML Sec. 4).

A sequence model T reads prompts [x_1, y_1, ..., x_k, y_k, x] (each y written into the first
coordinate of an otherwise zero token) and answers with its output at x. So

- adapt(D) is conditioning on the prompt D: the task model is the prompt itself, and the
  conditioning happens in the forward pass that reads a prediction off it;
- predict(D, x) = T([D, x]) for every query x on its own;
- represent(D) = T([D, u]) at the probe u that the batch shares: psi(g(D)) = g([D, u]);
- the episodic loss is the squared error at every x_i of the whole prompt given the pairs
  before it (the mean over all prefixes), which one causal pass computes at once.

Causal attention means a token appended after the prompt changes no earlier output. The pass
that gives the prefix loss therefore also reads the prediction at the probe and keeps it with the
whole-prompt model, so ConML's e* costs one extra token and only kappa needs a second pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from conml.episodes import EpisodeBatch, Tasks
from conml.learners.base import AdaptedModels, Learner
from conml.task_kind import TaskKind


@dataclass(eq=False)
class Prompt:
    """The task model of an in-context learner: the prompt it conditions on."""

    context: Tasks
    # (probe, prediction at it) read off by the pass that computed the prefix loss on this prompt.
    probe_reading: Optional[tuple[Tensor, Tensor]] = None


class InContextLearner(Learner):
    """Wraps a causal sequence model over vector tokens (e.g. conml.nets.gpt2.GPT2).

    `mixed_precision` runs the model under bf16 autocast on CUDA (weights, loss and outputs stay
    fp32); on the CPU the model always runs in fp32.
    """

    def __init__(self, net: nn.Module, kind: TaskKind, mixed_precision: bool = True):
        super().__init__(kind)
        self.net = net
        self.mixed_precision = mixed_precision

    def adapt(self, tasks: Tasks) -> Prompt:
        return Prompt(tasks)

    def predict(self, models: Prompt, x: Tensor) -> Tensor:
        context = interleave(models.context)
        tasks, queries = x.shape[:2]
        # Every query gets its own copy of the prompt, so no query sees another.
        prompts = context.unsqueeze(1).expand(tasks, queries, *context.shape[1:])
        sequences = torch.cat([prompts, x.unsqueeze(2)], dim=2).flatten(0, 1)
        return self._run(sequences)[:, -1].view(tasks, queries, -1)

    def represent(self, models: Prompt, batch: EpisodeBatch) -> Tensor:
        if models.probe_reading is not None and models.probe_reading[0] is batch.probe:
            return models.probe_reading[1]
        probe = batch.probe.expand(batch.num_tasks, 1, -1)
        return self.predict(models, probe)[:, 0]

    def prefix_predictions(self, tasks: Tasks, probe: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
        """Predictions [B, n, out] at each x_i given the pairs before it, in one pass.

        With a probe u, also the prediction [B, out] at u given all n pairs.
        """
        tokens = interleave(tasks)
        points = tasks.num_examples
        if probe is None:
            tokens = tokens[:, :-1]  # the last y is an answer, never a context
        else:
            tokens = torch.cat([tokens, probe.expand(tasks.num_tasks, 1, -1)], dim=1)
        outputs = self._run(tokens)
        return outputs[:, 0 : 2 * points : 2], None if probe is None else outputs[:, -1]

    def episodic_loss(self, batch: EpisodeBatch, models: AdaptedModels) -> Tensor:
        prompt = models.whole
        predictions, at_probe = self.prefix_predictions(prompt.context, batch.probe)
        if at_probe is not None:
            prompt.probe_reading = (batch.probe, at_probe)
        return self.kind.loss(predictions, prompt.context.y).mean()

    def _run(self, tokens: Tensor) -> Tensor:
        enabled = self.mixed_precision and tokens.is_cuda
        with torch.autocast(device_type=tokens.device.type, dtype=torch.bfloat16, enabled=enabled):
            return self.net(tokens).to(tokens.dtype)  # back from bf16 under autocast; float64 stays float64


def interleave(tasks: Tasks) -> Tensor:
    """[x_1, y_1, ..., x_n, y_n] as tokens [B, 2n, d]: each y in the first coordinate of a zero token."""
    x, y = tasks.x, tasks.y
    y_tokens = torch.cat([y, y.new_zeros(*y.shape[:2], x.shape[2] - y.shape[2])], dim=2)
    return torch.stack([x, y_tokens], dim=2).flatten(1, 2)
