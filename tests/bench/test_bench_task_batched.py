"""The fast paths of task_batched (grouped-convolution double backward, shared weights,
channels_last, folded layout) compute exactly what the plain per-task computation does."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conml.nets.task_batched import _GroupedConv2d, task_forward, task_params
from tests.net_settings import configured_net


def _second_order(f, params):
    """Gradient of ||df/dparams||^2: needs the double backward of every op in f."""
    grads = torch.autograd.grad(f(*params), params, create_graph=True)
    return torch.autograd.grad(sum(g.square().sum() for g in grads), params)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 0, 1)])
def test_grouped_convolution_matches_native_to_second_order(stride, padding, dilation):
    torch.manual_seed(0)
    groups = 3
    x = torch.randn(4, groups * 2, 9, 9, dtype=torch.float64, requires_grad=True)
    w = torch.randn(groups * 5, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(groups * 5, dtype=torch.float64, requires_grad=True)
    geometry = ((stride, stride), (padding, padding), (dilation, dilation), groups)

    def ours(x, w, b):
        return _GroupedConv2d.apply(x, w, b, geometry).sin().sum()

    def native(x, w, b):
        return F.conv2d(x, w, b, stride, padding, dilation, groups).sin().sum()

    assert torch.allclose(ours(x, w, b), native(x, w, b), rtol=0, atol=1e-12)
    for a, r in zip(_second_order(ours, (x, w, b)), _second_order(native, (x, w, b))):
        assert torch.allclose(a, r, rtol=1e-12, atol=1e-12)


def _net_and_tasks():
    torch.manual_seed(0)
    net = configured_net("conv4", in_channels=3, hidden=6, blocks=2, out_features=4, image_size=8).double()
    return net, torch.randn(3, 5, 3, 8, 8, dtype=torch.float64)


def _per_task_reference(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.stack([net(task) for task in x])  # BatchNorm statistics of each task alone


def test_folded_forward_matches_per_task_forward():
    net, x = _net_and_tasks()
    assert torch.allclose(task_forward(net, task_params(net, 3), x), _per_task_reference(net, x), rtol=0, atol=1e-12)


def test_shared_weights_give_the_per_task_values_and_meta_gradients():
    net, x = _net_and_tasks()
    params = list(net.parameters())

    def loss(shared: bool):
        weights = dict(net.named_parameters()) if shared else task_params(net, 3)
        return task_forward(net, weights, x).tanh().sum()

    assert torch.allclose(loss(True), loss(False), rtol=0, atol=1e-12)
    for a, b in zip(_second_order(lambda *_: loss(True), params), _second_order(lambda *_: loss(False), params)):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_channels_last_net_gives_the_same_result():
    net, x = _net_and_tasks()
    channels_last = copy.deepcopy(net).to(memory_format=torch.channels_last)
    expected = task_forward(net, task_params(net, 3), x)
    assert torch.allclose(task_forward(channels_last, task_params(channels_last, 3), x), expected, rtol=0, atol=1e-12)


def test_unsupported_padding_is_refused():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"))
    with pytest.raises(TypeError, match="padding"):
        task_forward(net, task_params(net, 2), torch.randn(2, 3, 3, 8, 8))
