"""B7: what measuring ConML's gradient share adds to training time.

Every `trainer.grad_share_every` steps the trainer keeps the step's graph (backward with
retain_graph) and back-propagates lambda*(d_in - d_out) once more on its own
(conml.gradient_share). This case times a plain training step and a measuring one side by side on
the sine-wave Table 2 preset (MLP 1-40-40-1, second-order MAML, 5-shot + 5 queries, ConML on,
psi = adapted weights) and spreads the difference over the interval. Its gate: a measuring step
leaves exactly the parameter gradients of a plain one, so measuring cannot change training.
"""

from __future__ import annotations

import copy

from conml.benchmarks.gates import GateResult
from conml.benchmarks.maml_peers import ProjectMAML, flat_meta_gradient, meta_iteration
from conml.benchmarks.results import CaseResult, Target
from conml.benchmarks.scale import BenchRun
from conml.benchmarks.setups import network, sine_setup, synthetic_batch
from conml.benchmarks.timing import Variant, measure
from conml.config import TrainerConfig
from conml.episodes import EpisodeBatch
from conml.training_step import meta_gradient

# Target: measuring at the default interval adds under this much to training time (%).
OVERHEAD_LIMIT = 5.0
PLAIN, MEASURING = "plain step", "step measuring the share"


class ShareMeasuringMAML(ProjectMAML):
    """The project's MAML as the trainer runs it on a measuring step: backward keeping the graph, then the share."""

    share: float = float("nan")

    def backward(self, batch: EpisodeBatch) -> None:
        _, (self.share, _, _) = meta_gradient(self.objective, self.module, batch, measure_share=True)


def same_gradients_gate(plain: ProjectMAML, measuring: ShareMeasuringMAML, batch: EpisodeBatch) -> GateResult:
    """The parameter gradients of a measuring step against a plain step's on the same weights (entries that differ at all)."""
    differing = (flat_meta_gradient(plain, batch) != flat_meta_gradient(measuring, batch)).sum()
    return GateResult(
        "measuring step's gradients = plain step's, bit for bit (entries that differ)", float(differing), 0.0
    )


def b7(run: BenchRun) -> list[CaseResult]:
    setup = sine_setup(run.scale.meta_batches[1], shots=5, queries=5, conml=True)
    every = TrainerConfig().grad_share_every
    net, batch = network(setup).to(run.device), synthetic_batch(setup, run.device)
    plain, measuring = ProjectMAML(copy.deepcopy(net), setup), ShareMeasuringMAML(copy.deepcopy(net), setup)
    result = CaseResult(
        "B7", "ConML gradient-share overhead", setup.label, PLAIN, [same_gradients_gate(plain, measuring, batch)]
    )
    if not result.passed:
        return [result]
    initial_share = measuring.share
    result.timings, failures = measure(
        [Variant(PLAIN, meta_iteration(plain, batch)), Variant(MEASURING, meta_iteration(measuring, batch))], run
    )
    result.notes += failures
    if MEASURING in result.timings:
        plain_ms, measuring_ms = result.timings[PLAIN].median_ms, result.timings[MEASURING].median_ms
        overhead = 100 * (measuring_ms - plain_ms) / (every * plain_ms)
        result.targets.append(
            Target(
                f"training time added by measuring every {every} steps (trainer.grad_share_every)",
                overhead,
                OVERHEAD_LIMIT,
            )
        )
        result.notes.append(
            f"a measuring step takes {measuring_ms / plain_ms:.2f}x a plain one; ConML's gradient share at the initial weights: {initial_share:.1e}"
        )
    return [result]
