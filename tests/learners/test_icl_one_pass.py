"""ConML-ICL in one pass: reader tokens give what the two-pass computation gave, in float64.

The in-context learner reads L_e, e* and e^kappa (kappa = the prompt's first half) off one pass over
[whole prompt, probe reading all of it, probe reading its first half]. It must give the loss,
d_in, d_out and every meta-gradient of the computation it replaced (the whole prompt with its
probe in one causal pass, the half prompt with its probe in a second) to 1e-10, and the learner
seam's generic prefix representations must agree with ICL's one-pass override.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from conml.episodes import EpisodeBatch
from conml.learners.base import Adaptation, Learner
from conml.learners.icl import InContextLearner
from conml.objective import ConMLObjective, ConMLSettings, SubsetStrategy, Terms
from tests.learners.test_conml_reference import CASES, ICL_SETTINGS, Reference, gradients, meta_parameters
from tests.net_settings import configured_net

TOLERANCE = 1e-10
CASE = CASES["icl"]  # a tiny GPT-2 with large weights, so that psi depends on the prompt


def build(tasks: int = 4, points: int = 7) -> tuple[InContextLearner, EpisodeBatch]:
    torch.manual_seed(0)
    learner = CASE.learner(None).double()
    return learner, CASE.batch(torch.Generator().manual_seed(3), tasks, points=points)


def two_passes(learner: InContextLearner, batch: EpisodeBatch) -> Reference:
    """The computation before reader tokens: whole prompt + probe causally (L_e, e*), then half prompt + probe."""
    whole = batch.whole
    predictions, e_star = learner.prefix_predictions(whole, batch.probe)
    half = learner.represent(learner.adapt(whole.first(whole.num_examples // 2), Adaptation.meta_train), batch)
    return Reference(list(half), list(e_star), (predictions - whole.y).pow(2).mean())


def test_reader_tokens_equal_passes_of_their_own():
    torch.manual_seed(0)
    net = configured_net("gpt2", in_features=3, width=16, depth=2, heads=4, max_positions=16).double()
    sequence, readers = torch.randn(2, 9, 3, dtype=torch.float64), (9, 4, 0, 1, 4)
    probes = torch.randn(2, len(readers), 3, dtype=torch.float64)
    out = net(torch.cat([sequence, probes], 1), readers=readers)
    torch.testing.assert_close(out[:, :9], net(sequence), rtol=0, atol=1e-12)
    for j, r in enumerate(readers):
        alone = net(torch.cat([sequence[:, :r], probes[:, j : j + 1]], 1))[:, -1]
        torch.testing.assert_close(out[:, 9 + j], alone, rtol=0, atol=1e-12)


def test_reader_positions_are_checked():
    net = configured_net("gpt2", in_features=3, width=8, depth=1, heads=2, max_positions=6)
    with pytest.raises(ValueError, match="reader positions"):
        net(torch.randn(1, 5, 3), readers=(5,))  # a reader after 4 tokens cannot read 5
    net(torch.randn(1, 7, 3), readers=(5, 2))  # positions up to 5: fits 6
    with pytest.raises(Exception, match="max_positions=6"):
        net(torch.randn(1, 7, 3), readers=(6,))


@pytest.mark.parametrize("points", [6, 7])  # an even and an odd prompt: floor(n/2)
def test_one_pass_gives_the_two_pass_loss_distances_and_gradients(points):
    learner, batch = build(points=points)
    params, lam = meta_parameters(learner), ICL_SETTINGS.lam
    parts = ConMLObjective(ICL_SETTINGS)(learner, batch)
    reference = two_passes(learner, batch)
    d_in, d_out = reference.distances(ICL_SETTINGS)
    terms = {
        "episodic": (parts.episodic, reference.episodic),
        "d_in": (parts.d_in, d_in),
        "d_out": (parts.d_out, d_out),
    }
    total = reference.episodic + lam * (d_in - d_out)
    terms["total"] = (parts.total, total)
    for term, (ours, theirs) in terms.items():
        assert abs(ours.item() - theirs.item()) <= TOLERANCE, f"{term}: {ours.item()!r} != {theirs.item()!r}"
        got, expected = gradients(ours, params), gradients(theirs, params)
        scale = max(g.abs().max().item() for g in expected.values())
        assert scale > 0, f"degenerate case: {term} has no gradient"
        worst = max((got[name] - expected[name]).abs().max().item() for name in params)
        assert worst <= TOLERANCE * max(scale, 1.0), f"{term}: gradients differ by {worst:.2e} (largest {scale:.2e})"
    assert abs(d_in.item() - d_out.item()) > 1e-6, "degenerate case: d_in and d_out agree"


def test_the_seams_generic_prefix_representations_agree_with_the_one_pass_override():
    """`Learner.episodic_loss_with_prefixes` (adapt and represent each prefix) is the contract ICL's override keeps."""
    learner, batch = build(points=7)
    lengths = [7, 3, 3, 1, 0]
    one_pass = learner.episodic_loss_with_prefixes(batch, lengths, Adaptation.meta_train)
    by_prefix = Learner.episodic_loss_with_prefixes(learner, batch, lengths, Adaptation.meta_train)
    loss, readings, generic_loss, generic = one_pass.loss, one_pass.prefixes, by_prefix.loss, by_prefix.prefixes
    assert abs(loss.item() - generic_loss.item()) <= TOLERANCE
    for length, ours, theirs in zip(lengths, readings, generic):
        assert ours.shape == theirs.shape == (batch.num_tasks, 1)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=TOLERANCE, msg=lambda m: f"prefix of {length}: {m}")


class Recording(InContextLearner):
    """Records the prefix lengths the objective asks for."""

    asked: list[list[int]]

    def episodic_loss_with_prefixes(self, batch, lengths, mode):
        self.asked.append(list(lengths))
        return super().episodic_loss_with_prefixes(batch, lengths, mode)


@pytest.mark.parametrize(
    "settings, expected",
    [
        (ICL_SETTINGS, [7, 3]),
        (replace(ICL_SETTINGS, num_subsets=2), [7, 3, 3]),
        (replace(ICL_SETTINGS, subset=SubsetStrategy.support), [7]),
        (replace(ICL_SETTINGS, subset=SubsetStrategy.random, num_subsets=2), [7]),
        (replace(ICL_SETTINGS, terms=Terms.discrimination), [7]),
        (ConMLSettings(enabled=False), []),
    ],
)
def test_the_objective_asks_for_prefixes_only_when_kappa_is_a_prefix(settings, expected):
    """The one-pass path serves conml.subset=prefix; other subsets are adapted to and represented as before."""
    _, batch = build(points=7)
    torch.manual_seed(0)
    base = CASE.learner(None)
    learner = Recording(base.net, base.kind, mixed_precision=base.mixed_precision).double()
    learner.asked = []
    parts = ConMLObjective(settings)(learner, batch)
    assert learner.asked == [expected]
    if settings.enabled and settings.terms != Terms.discrimination:
        assert parts.d_in is not None and parts.d_in.item() > 0


def test_k_prefix_subsets_give_the_d_in_of_one():
    learner, batch = build(points=7)
    one = ConMLObjective(ICL_SETTINGS)(learner, batch)
    two = ConMLObjective(replace(ICL_SETTINGS, num_subsets=2))(learner, batch)
    assert abs(one.d_in.item() - two.d_in.item()) <= TOLERANCE and abs(one.total.item() - two.total.item()) <= TOLERANCE
