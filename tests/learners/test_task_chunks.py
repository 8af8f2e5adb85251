"""Task chunks (trainer.task_chunk) give the meta-gradient of the whole meta-batch, in float64.

For MAML, FOMAML, Reptile, ProtoNet, Simple CNAPs and ICL (tiny instances from the per-task
reference tests) with ConML on, chunks of 1, 3 and all B tasks must give the unchunked loss parts
and meta-gradient to 1e-10, including d_out over every pair of tasks of different chunks; so must
meta-batch centring, random subsets, the two ablations, ConML off, and two gloo processes that
each take their tasks in chunks. The contrastive gradient the chunks report (for ConML's gradient
share) must be the unchunked one, and measuring it must leave the step's gradient bit for bit.
Also: dropout masks are replayed in a chunk's second pass, the bf16 wrapper is unwrapped, bad
settings are refused at start-up, task_chunk=auto's budget rule (its GPU counters faked here), and
a short run trains with chunks as without them and says so in its start-up line.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import replace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conml.checks.settings import check_settings
from conml.distributed import TaskShard
from conml.errors import ConfigError
from conml.memory_plan import auto_task_chunk, chunk_for_budget
from conml.objective import Centring, ConMLObjective, ConMLSettings, SubsetStrategy, Terms
from conml.task_chunks import chunked_backward
from tests.conftest import compose_config
from tests.learner_settings import configured
from tests.learners.test_conml_reference import CASES, Case
from tests.net_settings import configured_net

TASKS = 5  # chunks of 3 leave a chunk of 2
TOLERANCE = 1e-10

LEARNERS = {
    "maml": CASES["maml"],
    "fomaml": CASES["fomaml"],
    "reptile": CASES["reptile"],
    "protonet": CASES["protonet"],
    "simple_cnaps": CASES["simple_cnaps"],
    "icl": CASES["icl"],
    # The settings that couple or select tasks differently, on the cheapest learner.
    "protonet-centring": replace(CASES["protonet"], settings=ConMLSettings(lam=0.1, centring=Centring.meta_batch)),
    "protonet-random-subsets": replace(
        CASES["protonet"],
        settings=ConMLSettings(lam=0.1, subset=SubsetStrategy.random, num_subsets=2, subset_fraction=0.6),
    ),
    "protonet-alignment": replace(CASES["protonet"], settings=ConMLSettings(lam=0.1, terms=Terms.alignment)),
    "protonet-discrimination": replace(CASES["protonet"], settings=ConMLSettings(lam=0.1, terms=Terms.discrimination)),
    "maml-conml-off": replace(CASES["maml"], settings=ConMLSettings(enabled=False)),
}


def build(case: Case, tmp_path):
    torch.manual_seed(0)
    learner = case.learner(tmp_path).double()
    return learner, case.batch(torch.Generator().manual_seed(1), TASKS)


def parameters(learner) -> list[torch.Tensor]:
    return [p for p in learner.parameters() if p.requires_grad]


def unchunked(objective, learner, batch):
    """(loss parts, meta-gradient, gradient of the contrastive term) of the ordinary step."""
    learner.zero_grad(set_to_none=True)
    torch.manual_seed(2)  # random subsets
    parts = objective(learner, batch)
    params = parameters(learner)
    pulls = None
    if parts.contrastive is not None:
        pulls = torch.autograd.grad(parts.contrastive, params, retain_graph=True, allow_unused=True)
        pulls = [torch.zeros_like(p) if g is None else g for p, g in zip(params, pulls)]
    parts.total.backward()
    return parts, [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params], pulls


def chunked(objective, learner, batch, size, measure=False):
    learner.zero_grad(set_to_none=True)
    torch.manual_seed(2)
    parts, pulls = chunked_backward(objective, learner, batch, size, parameters(learner) if measure else None)
    return parts, [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in parameters(learner)], pulls


def assert_same(got: list[torch.Tensor], expected: list[torch.Tensor], what: str) -> None:
    scale = max(g.abs().max().item() for g in expected)
    assert scale > 0, f"degenerate case: {what} is zero"
    worst = max((a - b).abs().max().item() for a, b in zip(got, expected))
    assert worst <= TOLERANCE * max(scale, 1.0), f"{what} differs by {worst:.3e} (largest entry {scale:.3e})"


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_chunks_give_the_unchunked_meta_gradient(name, tmp_path):
    case = LEARNERS[name]
    learner, batch = build(case, tmp_path)
    objective = ConMLObjective(case.settings)
    parts, expected, _ = unchunked(objective, learner, batch)
    for size in (1, 3, TASKS):
        got_parts, got, _ = chunked(objective, learner, batch, size)
        assert_same(got, expected, f"meta-gradient with chunks of {size}")
        for field in ("total", "episodic", "d_in", "d_out", "contrastive"):
            ours, theirs = getattr(got_parts, field), getattr(parts, field)
            assert (ours is None) == (theirs is None), field
            if theirs is not None:
                assert abs(ours.item() - theirs.item()) <= TOLERANCE, (
                    f"{field} with chunks of {size}: {ours.item()} != {theirs.item()}"
                )


@pytest.mark.parametrize("name", ["maml", "simple_cnaps", "icl"])
def test_chunks_report_the_contrastive_gradient_without_changing_the_step(name, tmp_path):
    """ConML's gradient share from chunks: the same contrastive gradient, and .grad bit for bit as unmeasured."""
    case = LEARNERS[name]
    learner, batch = build(case, tmp_path)
    objective = ConMLObjective(case.settings)
    _, _, expected_pulls = unchunked(objective, learner, batch)
    _, plain, none = chunked(objective, learner, batch, 2)
    _, measured, pulls = chunked(objective, learner, batch, 2, measure=True)
    assert none is None
    assert all(torch.equal(a, b) for a, b in zip(measured, plain)), "measuring the share changed the step's gradient"
    assert_same(pulls, expected_pulls, "contrastive gradient")


def test_bf16_objective_wrapper_is_chunked_through_its_objective(tmp_path):
    """Under performance.precision=bf16 the objective's forward passes run under autocast; chunks run theirs in the
    same context (autocast is a no-op on a CPU, so the gradients are the plain objective's)."""
    from conml.performance import PerformanceSettings, Precision, autocast

    case = LEARNERS["protonet"]
    learner, batch = build(case, tmp_path)
    objective = ConMLObjective(case.settings)
    _, expected, _ = unchunked(objective, learner, batch)
    _, got, _ = chunked(
        ConMLObjective(
            case.settings,
            forward_context=lambda: autocast(PerformanceSettings(precision=Precision.bf16), torch.device("cpu")),
        ),
        learner,
        batch,
        2,
    )
    assert_same(got, expected, "meta-gradient through the autocast wrapper")


def test_dropout_masks_are_the_same_in_both_passes_of_a_chunk():
    """With dropout, a single chunk draws the unchunked step's masks in both of its passes, so it gives the
    unchunked meta-gradient (chunks of fewer tasks draw other masks, as another meta-batch size would)."""
    from conml.learners.maml import MAML
    from conml.task_kind import CLASSIFICATION
    from tests.learners.test_conml_reference import IMAGES

    torch.manual_seed(0)
    net = configured_net(
        "kim_conv2",
        channels=[4, 8],
        first_kernel=3,
        first_padding=1,
        fc_units=16,
        fc_layers=2,
        dropout=0.5,
        out_features=3,
        image_size=8,
    )
    learner = configured("maml", net, CLASSIFICATION, inner_steps=1, inner_lr=0.3, first_order=True).double()
    batch, objective = IMAGES(torch.Generator().manual_seed(1), TASKS), ConMLObjective(ConMLSettings(lam=0.5))
    _, expected, _ = unchunked(objective, learner, batch)
    _, got, _ = chunked(objective, learner, batch, TASKS)
    assert_same(got, expected, "meta-gradient with dropout")


# ----------------------------------------------------------------------------------------------
# Two processes, each taking its tasks in chunks

WORLD = 2
GLOO_TASKS = 6  # 3 per process: chunks of 2 leave a chunk of 1
GLOO_SETTINGS = ConMLSettings(lam=0.5, centring=Centring.meta_batch)


def gloo_problem(tmp_path):
    torch.manual_seed(0)
    learner = CASES["maml"].learner(tmp_path).double()
    return learner, CASES["maml"].batch(torch.Generator().manual_seed(1), GLOO_TASKS)


def gloo_worker(rank, port, tmp_path, results):
    # pytest's warning filters do not reach spawned processes: a deprecated collective must fail here too.
    warnings.simplefilter("error", FutureWarning)
    warnings.simplefilter("error", DeprecationWarning)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        learner, batch = gloo_problem(tmp_path)
        shard = TaskShard(rank, WORLD)
        first, count = shard.local_tasks(GLOO_TASKS)
        local = replace(batch, support=_tasks(batch.support, first, count), query=_tasks(batch.query, first, count))
        parts, _, pulls = chunked(ConMLObjective(GLOO_SETTINGS, shard), learner, local, 2, measure=True)
        shard.sum_gradients(learner.parameters())
        shard.sum_tensors(pulls)
        total = shard.sum_tensors([parts.total.clone()])[0]
        results[rank] = ([p.grad.clone() for p in parameters(learner)], pulls, total.item())
    finally:
        dist.destroy_process_group()


def _tasks(tasks, first, count):
    return replace(tasks, x=tasks.x[first : first + count], y=tasks.y[first : first + count])


@pytest.mark.timeout(120)
def test_two_processes_with_chunks_give_the_single_process_meta_gradient(unused_tcp_port, tmp_path):
    learner, batch = gloo_problem(tmp_path)
    parts, expected, expected_pulls = unchunked(ConMLObjective(GLOO_SETTINGS), learner, batch)
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(gloo_worker, args=(unused_tcp_port, tmp_path, results), nprocs=WORLD, join=True)
        per_rank = [results[r] for r in range(WORLD)]
    for grads, pulls, total in per_rank:
        assert_same(grads, expected, "two-process chunked meta-gradient")
        assert_same(pulls, expected_pulls, "two-process chunked contrastive gradient")
        assert abs(total - parts.total.item()) <= TOLERANCE


# ----------------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize("value", [0, 5, -1, "big", 1.5, True])
def test_bad_task_chunks_are_refused_at_start_up(value):
    cfg = compose_config(
        ["trainer.meta_batch_size=4", f"trainer.task_chunk={str(value).lower() if isinstance(value, bool) else value}"]
    )
    with pytest.raises(
        ConfigError, match=r"trainer\.task_chunk=.* must be an integer from 1 to the meta-batch, 4 here"
    ):
        check_settings(cfg)


def test_task_chunks_are_per_process():
    check_settings(compose_config(["trainer.meta_batch_size=8", "trainer.task_chunk=4"]), world_size=2)
    with pytest.raises(ConfigError, match=r"per process \(8 over 2 processes\), 4 here"):
        check_settings(compose_config(["trainer.meta_batch_size=8", "trainer.task_chunk=5"]), world_size=2)


def test_auto_chunks_fit_the_budget():
    gib = 2**30
    linear = lambda base, per_task: lambda size: base + size * per_task  # noqa: E731
    assert chunk_for_budget(linear(10 * gib, 2 * gib), 32, 80 * gib)[0] is None  # 10 + 32 * 2 = 74: no chunks needed
    assert chunk_for_budget(linear(10 * gib, 4 * gib), 32, 80 * gib)[0] == 17  # 10 + 17 * 4 = 78 <= 80 < 82
    assert chunk_for_budget(linear(10 * gib, 80 * gib), 32, 95 * gib)[0] == 1
    with pytest.raises(ConfigError, match="even one task per chunk needs"):
        chunk_for_budget(linear(10 * gib, 80 * gib), 32, 80 * gib)


def test_auto_takes_no_chunks_on_a_cpu():
    assert auto_task_chunk(None, None, None, lambda: None, torch.device("cpu"), None) == (None, "no chunks on a CPU")


def test_auto_measures_steps_and_leaves_no_trace(tmp_path, monkeypatch):
    """The GPU path with the CUDA memory counters faked: peaks of chunks of 1 and 2 tasks, plus room for
    Adam's moments; gradients, random state and buffers are as before."""
    import conml.training_step as training_step

    learner, batch = build(LEARNERS["maml"], tmp_path)
    optimizer = torch.optim.Adam(learner.parameters())
    gib, sizes = 2**30, []
    real = training_step.chunked_backward

    def recorded(objective, learner, batch, size, measured=None):
        sizes.append(size)
        return real(objective, learner, batch, size, measured)

    monkeypatch.setattr(training_step, "chunked_backward", recorded)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: (1 + 2 * sizes[-1]) * gib)
    random_state, buffers = torch.get_rng_state(), [b.clone() for b in learner.buffers()]
    chunk, measured = auto_task_chunk(
        ConMLObjective(LEARNERS["maml"].settings), learner, optimizer, lambda: batch, torch.device("cuda"), 6.0
    )
    reserved = 2 * sum(p.numel() * p.element_size() for p in learner.parameters()) / gib
    assert sizes == [1, 2] and chunk == 2, (chunk, reserved)  # 3 + 2 GB fits 6 GB, 3 + 2 * 2 does not
    assert measured.startswith(f"{3 + reserved:.2f} GB with 1 task per chunk, 2.00 GB per further task, budget 6.0 GB")
    assert all(p.grad is None for p in learner.parameters())
    assert torch.equal(torch.get_rng_state(), random_state) and all(
        torch.equal(a, b) for a, b in zip(learner.buffers(), buffers)
    )


def test_a_chunked_run_trains_as_an_unchunked_one(run_tiny, capsys):
    """The trainer's step with chunks: the same training to float32 rounding, and the start-up line says so."""
    from conml.checkpoint import load_checkpoint

    overrides = ["trainer.grad_share_every=1"]
    _, plain = run_tiny(overrides, "plain")
    summary, chunked_dir = run_tiny([*overrides, "trainer.task_chunk=3"], "chunked")
    start = capsys.readouterr().out
    assert (
        "on cpu (device=cpu); precision float32 (performance.precision acts on CUDA only); meta-batch 4, all tasks at once."
        in start
    )
    assert (
        "on cpu (device=cpu); precision float32 (performance.precision acts on CUDA only); meta-batch 4, task chunks of 3."
        in start
    )
    weights = [load_checkpoint(folder / "checkpoints" / "last.pt")["learner"] for folder in (plain, chunked_dir)]
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=1e-5, atol=1e-6)
    shares = [
        [
            line["train/conml_grad_share"]
            for line in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
            if "train/conml_grad_share" in line
        ]
        for folder in (plain, chunked_dir)
    ]
    assert summary["conml_grad_share_measurements"] == len(shares[1]) == 4 and shares[1] == pytest.approx(
        shares[0], rel=1e-4
    )
    run_tiny(["trainer.task_chunk=auto"], "auto")
    assert "meta-batch 4, all tasks at once (task_chunk=auto: no chunks on a CPU)." in capsys.readouterr().out
