"""Function-class tasks for in-context learning: shapes, the classes' structure, curriculum, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from conml.errors import ConfigError
from tests.dataset_settings import part, source

# Each function class as its dataset config has it: sparsity 3, depth 4, 100 hidden units.
FAMILIES = {
    "LinearFunctions": "linear_regression",
    "SparseLinearFunctions": "sparse_linear_regression",
    "DecisionTrees": "decision_tree",
    "ReLUNets": "relu_net",
}


@pytest.mark.parametrize("dataset", FAMILIES.values(), ids=FAMILIES.keys())
def test_batches_have_prompt_shapes(dataset):
    prompts = source(dataset, dims=6, points=9, curriculum=None, queries=2, meta_batch_size=4)
    train = prompts.sample("train", 0, 4)
    assert train.support.x.shape == (4, 7, 6) and train.support.y.shape == (4, 7, 1)
    assert train.query.x.shape == (4, 2, 6) and train.query.y.shape == (4, 2, 1)
    assert train.whole.x.shape == (4, 9, 6) and train.probe.shape == (6,)
    test = prompts.sample("test", 0, 3, shots=5, queries=1)
    assert test.support.x.shape == (3, 5, 6) and test.query.y.shape == (3, 1, 1)
    assert torch.isfinite(train.whole.y).all() and train.whole.y.std() > 0


def test_sparse_weights_have_three_active_coordinates():
    g = torch.Generator().manual_seed(0)
    w = part("sparse_linear_regression", "functions", sparsity=3).draw(g, 200, dims=20, active=8)["w"]
    assert ((w != 0).sum(1) == 3).all()
    assert (w[:, 8:] == 0).all()
    assert (w[:, :8] != 0).any(0).all()  # every active coordinate gets used by some task


def test_decision_trees_end_in_leaves_at_their_depth():
    trees = part("decision_tree", "functions", depth=4)
    g = torch.Generator().manual_seed(0)
    params = trees.draw(g, 16, dims=5, active=5)
    x = torch.randn(16, 300, 5, generator=g)
    leaves = trees.leaves(params, x)
    assert leaves.min() >= 2**4 - 1 and leaves.max() <= 2**5 - 2
    assert all(len(trees(params, x)[i].unique()) <= 2**4 for i in range(16))


def test_decision_tree_by_hand():
    # Depth 2: the root splits on x_1, its children on x_0 (left) and x_2 (right); leaves 3..6 hold 10..13.
    trees = part("decision_tree", "functions", depth=2)
    params = {"coordinate": torch.tensor([[1, 0, 2, 0, 0, 0, 0]]), "value": torch.tensor([[0.0, 0, 0, 10, 11, 12, 13]])}
    x = torch.tensor([[[-1.0, -1, 5], [1, -1, 5], [0, 1, -1], [0, 1, 1]]])
    assert trees(params, x).tolist() == [[10.0, 11.0, 12.0, 13.0]]


def test_relu_net_by_hand():
    nets = part("relu_net", "functions", hidden=2)
    params = {"w1": torch.tensor([[[1.0, -1.0], [2.0, 1.0]]]), "w2": torch.tensor([[3.0, 5.0]])}
    x = torch.tensor([[[1.0, 1.0], [1.0, -3.0]]])
    # hidden: relu([3, 0]) and relu([-5, -4]) -> outputs 9 and 0, times sqrt(2 / 2)
    assert torch.allclose(nets(params, x), torch.tensor([[9.0, 0.0]]) * math.sqrt(1.0))


def _original_curriculum(steps: int, start: int, end: int, inc: int, interval: int) -> list[int]:
    """The original's stateful counter: update() once per step, starting from `start`."""
    value, values = start, []
    for count in range(steps):
        values.append(value)
        if (count + 1) % interval == 0:
            value += inc
        value = min(value, end)
    return values


def test_curriculum_matches_the_original_counter():
    curriculum = part(
        "linear_regression", "curriculum", dims_start=5, points_start=11, dims_inc=1, points_inc=2, interval=7
    )
    dims = _original_curriculum(200, 5, 20, 1, 7)
    points = _original_curriculum(200, 11, 41, 2, 7)
    assert [curriculum.at(step, 20, 41) for step in range(200)] == list(zip(dims, points))


def test_training_batches_follow_the_curriculum_and_zero_inactive_inputs():
    curriculum = dict(dims_start=3, points_start=5, dims_inc=1, points_inc=2, interval=2)
    prompts = source("linear_regression", dims=6, points=11, curriculum=curriculum, meta_batch_size=4)
    batch = prompts.sample("train", 2 * 4, 4)  # step 2: 4 active dims, 7 points
    assert batch.whole.x.shape == (4, 7, 6)
    assert (batch.whole.x[..., 4:] == 0).all() and (batch.whole.x[..., :4] != 0).all()
    assert (batch.probe[4:] == 0).all()
    assert prompts.sample("test", 0, 2).whole.x.shape == (2, 11, 6)  # evaluation at full size
    assert (prompts.sample("test", 0, 2).whole.x != 0).all()


def test_a_task_is_the_same_whatever_batch_draws_it():
    prompts = source("decision_tree", functions={"depth": 3}, dims=4, points=7, curriculum=None, meta_batch_size=5)
    block = prompts.sample("train", 10, 5).whole
    some = prompts.sample("train", 12, 2).whole
    assert torch.equal(some.x, block.x[2:4]) and torch.equal(some.y, block.y[2:4])
    across = prompts.sample("train", 13, 4).whole  # tasks 13, 14 | 15, 16: two meta-batches
    assert torch.equal(across.x[:2], block.x[3:])
    assert torch.equal(across.x[2:], prompts.sample("train", 15, 5).whole.x[:2])
    tests = prompts.sample("test", 0, 8).whole
    assert torch.equal(prompts.sample("test", 5, 3).whole.y, tests.y[5:])
    fewer = prompts.sample("test", 0, 8, shots=2)
    assert torch.equal(fewer.support.x, tests.x[:, :2]) and torch.equal(fewer.query.x, tests.x[:, 2:3])


def test_the_probe_is_one_input_per_meta_batch():
    prompts = source("linear_regression", dims=5, points=6, curriculum=None, meta_batch_size=4)
    first, again, second = prompts.sample("train", 0, 4), prompts.sample("train", 0, 4), prompts.sample("train", 4, 4)
    assert first.probe.shape == (5,)
    assert torch.equal(first.probe, again.probe) and not torch.equal(first.probe, second.probe)
    assert not any(torch.equal(first.probe, x) for x in first.whole.x.reshape(-1, 5))


def test_impossible_settings_fail_with_config_errors():
    with pytest.raises(ConfigError, match="sparsity"):
        source(
            "sparse_linear_regression", functions={"sparsity": 4}, dims=3, points=5, curriculum=None, meta_batch_size=64
        ).sample("train", 0, 2)
    with pytest.raises(ConfigError, match="shots"):
        source("linear_regression", dims=3, points=5).sample("test", 0, 2, shots=5)
    with pytest.raises(ConfigError, match="curriculum"):
        part("linear_regression", "curriculum", dims_start=2, points_start=5, interval=0)
