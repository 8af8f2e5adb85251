"""A meta-batch spread over 2 processes (gloo) gives the single-process meta-gradient, warning-free."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import conml.train
from conml.distributed import TaskShard
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import ConfigError
from conml.launch import Launch
from conml.learners.maml import MAML
from conml.objective import ConMLObjective, ConMLSettings
from conml.task_kind import CLASSIFICATION
from tests.conftest import TINY, compose_config
from tests.learner_settings import configured
from tests.net_settings import configured_net

TASKS, WORLD = 4, 2


def make_problem():
    torch.manual_seed(0)
    learner = configured(
        "maml",
        configured_net("conv4", in_channels=3, hidden=4, blocks=2, out_features=3, image_size=8),
        CLASSIFICATION,
        inner_steps=2,
        inner_lr=0.1,
    ).double()
    x = torch.randn(TASKS, 12, 3, 8, 8, dtype=torch.float64)
    y = torch.arange(3).repeat(4).repeat(TASKS, 1)
    return learner, EpisodeBatch(Tasks(x[:, :6], y[:, :6]), Tasks(x[:, 6:], y[:, 6:]))


def meta_gradient(learner, batch, shard):
    learner.zero_grad()
    ConMLObjective(ConMLSettings(lam=0.5), shard)(learner, batch).total.backward()
    shard.sum_gradients(learner.parameters())
    return [p.grad.clone() for p in learner.parameters()]


def worker(rank, port, results):
    # pytest's warning filters do not reach spawned processes: a deprecated collective must fail here too.
    warnings.simplefilter("error", FutureWarning)
    warnings.simplefilter("error", DeprecationWarning)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        learner, batch = make_problem()
        shard = TaskShard(rank, WORLD)
        first, count = shard.local_tasks(TASKS)
        local = EpisodeBatch(
            *(Tasks(t.x[first : first + count], t.y[first : first + count]) for t in (batch.support, batch.query))
        )
        results[rank] = meta_gradient(learner, local, shard)
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_two_processes_give_the_single_process_meta_gradient(unused_tcp_port):
    learner, batch = make_problem()
    single = meta_gradient(learner, batch, TaskShard())
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(unused_tcp_port, results), nprocs=WORLD, join=True)
        per_rank = [results[r] for r in range(WORLD)]
    for rank_grads in per_rank:  # after the all-reduce every process holds the same gradient
        worst = max((a - b).abs().max().item() for a, b in zip(rank_grads, single))
        assert worst < 1e-12, f"distributed meta-gradient differs by {worst:.3e}"


def test_meta_batch_must_split_evenly():
    with pytest.raises(ConfigError, match="multiple of the number of processes"):
        TaskShard(0, 3).local_tasks(32)


def test_a_multi_process_run_refuses_a_missing_setting_before_joining_the_process_group(monkeypatch, tmp_path):
    """Every check that can refuse a run comes before torchrun's process group is joined: otherwise each rank
    waits on the others before it can say what is wrong."""

    def joined(*args):
        raise AssertionError("the process group was joined before the settings were checked")

    monkeypatch.setattr(conml.train, "join_process_group", joined)
    cfg = compose_config([*TINY, "~learner.inner_lr"])
    with pytest.raises(ConfigError, match="lacks required setting"):
        conml.train.run(cfg, tmp_path / "run", launch=Launch(world_size=WORLD))
    assert not (tmp_path / "run").exists()
