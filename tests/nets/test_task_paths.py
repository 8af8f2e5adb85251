"""Every shipped backbone gives the same numbers on its declared fast path as with torch.func.

For each configs/model/*.yaml (the GPT-2s excepted: they never take per-task weights), built small
and in float64: the outputs, the gradients with respect to the parameters and the BatchNorm running
statistics after a call are those of `functional_call(net, weights_t, x[t])` run task after task, in
training and in eval mode, with per-task and with shared parameters; and, for two small nets, the
second-order meta-gradient of a MAML step."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import Tensor, nn

from conml.nets.task_batched import TaskBatched
from conml.nets.task_functional import TaskPath, task_call, task_path
from tests.conftest import CONFIGS

TASKS = 3
EXAMPLES = 5
TOLERANCE = {"rtol": 1e-10, "atol": 1e-10}

# Small settings for each net class: the layers and BatchNorm settings of the config, on 16-pixel
# images and narrow layers.
SMALL = {
    "conml.nets.conv.ConvNet": lambda cfg: ["model.hidden=4", "model.image_size=16", "model.out_features=3"],
    "conml.nets.resnet12.ResNet12": lambda cfg: ["model.channels=[3,4,5,6]", "model.image_size=16"],
    "conml.nets.kim_conv.KimConvNet": lambda cfg: [
        f"model.channels=[{','.join(str(max(2, c // 6)) for c in cfg.channels)}]",
        "model.fc_units=6",
        "model.image_size=16",
    ],
    "conml.nets.mlp.MLP": lambda cfg: [],
}
SHIPPED = sorted(path.stem for path in (CONFIGS / "model").glob("*.yaml") if not path.stem.startswith("gpt2"))
# Not run with per-task weights: Simple CNAPs calls it with per-image FiLM parameters, and it stays in eval mode.
OWN_TASK_PATH = {"resnet18_film"}
FAST = sorted(set(SHIPPED) - OWN_TASK_PATH)


def build(name: str) -> nn.Module:
    """configs/model/<name>.yaml, small, float64, with dropout off (masks differ between the ways)."""
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(f"model/{name}").model
        cfg = compose(f"model/{name}", overrides=SMALL[cfg._target_](cfg)).model
    torch.manual_seed(0)
    net = instantiate(cfg).double()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5), module.bias.normal_(0, 0.2)  # not the identity
                if module.running_mean is not None:  # statistics that differ from any batch's
                    module.running_mean.normal_(0, 0.5), module.running_var.uniform_(0.5, 2)
    return net


def inputs(net: nn.Module, name: str) -> Tensor:
    """[T, n, ...] inputs whose tasks differ in scale, so that each task's batch statistics matter."""
    g = torch.Generator().manual_seed(1)
    if isinstance(net[0], nn.Linear):
        shape = (net[0].in_features,)
    else:
        first = net[0] if isinstance(net[0], nn.Conv2d) else net[0].conv1
        shape = (first.in_channels, 16, 16)
    x = torch.randn(TASKS, EXAMPLES, *shape, generator=g, dtype=torch.float64)
    return x * torch.tensor([1.0, 3.0, 0.3], dtype=torch.float64).view(-1, *[1] * (len(shape) + 1))


def torch_func_path(net: nn.Module) -> TaskPath:
    """The way `task_call` would run `net` if it did not declare the fast path."""
    writes = any(getattr(m, "track_running_stats", False) and m.running_mean is not None for m in net.modules())
    return TaskPath.loop if net.training and writes else TaskPath.vmap


def per_task_params(net: nn.Module, shared: bool) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(2)
    return {
        name: p if shared else p + 0.1 * torch.randn(TASKS, *p.shape, generator=g, dtype=p.dtype)
        for name, p in net.named_parameters()
    }


def run(net: nn.Module, path: TaskPath, x: Tensor, shared: bool, buffers: dict[str, Tensor]):
    """Output, gradients and buffers after one call of `task_call` on `path`, from the given buffers."""
    net.load_state_dict(buffers, strict=False)
    out = task_call(net, per_task_params(net, shared), x, path=path)
    g = torch.Generator().manual_seed(3)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum() + out.tanh().sum()
    grads = torch.autograd.grad(loss, list(net.parameters()))
    return out.detach(), grads, {name: b.clone() for name, b in net.named_buffers()}


def test_every_shipped_backbone_is_tested():
    assert "kim_conv6" in FAST and "conv4" in FAST and "mlp" in FAST and "resnet12" in FAST
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        targets = {compose(f"model/{name}").model._target_ for name in FAST}
    assert targets == set(SMALL)


@pytest.mark.parametrize("name", FAST)
def test_shipped_backbones_declare_the_fast_path(name):
    net = build(name)
    assert isinstance(net, TaskBatched)
    assert task_path(net) is TaskPath.grouped and task_path(net.eval()) is TaskPath.grouped


def test_resnet18_film_runs_with_torch_func():
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "model/resnet18_film", overrides=["model.pretrained=null", "model.frozen=false", "model.width=4"]
        ).model
    assert task_path(instantiate(cfg)) is TaskPath.vmap  # always in eval mode, so it writes no buffers


@pytest.mark.parametrize("shared", [False, True], ids=["per-task", "shared"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", FAST)
def test_the_fast_path_gives_the_torch_func_results(name, training, shared):
    net = build(name).train(training)
    x = inputs(net, name)
    buffers = {name: b.clone() for name, b in net.named_buffers()}
    fast = run(net, TaskPath.grouped, x, shared, buffers)
    func = run(net, torch_func_path(net), x, shared, buffers)
    torch.testing.assert_close(fast[0], func[0], **TOLERANCE)
    for (param, _), a, b in zip(net.named_parameters(), fast[1], func[1]):
        torch.testing.assert_close(a, b, **TOLERANCE, msg=lambda m: f"gradient of {param}: {m}")
    assert fast[2].keys() == func[2].keys()
    for key in fast[2]:
        torch.testing.assert_close(fast[2][key], func[2][key], **TOLERANCE, msg=lambda m: f"buffer {key}: {m}")
    tracking = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None]
    if tracking:  # a train-mode call moved the statistics (one update per task), an eval-mode one did not
        assert all(int(m.num_batches_tracked) == (TASKS if training else 0) for m in tracking)
        moved = max((fast[2][k] - buffers[k]).abs().max().item() for k in buffers if "running" in k)
        assert (moved > 1e-3) is training


def test_cumulative_average_statistics_match_the_module():
    """momentum=None: the running statistics are the average over all tasks seen, as the module keeps it."""
    net = build("kim_conv2")
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None
    x = inputs(net, "kim_conv2")
    buffers = {name: b.clone() for name, b in net.named_buffers()}
    for key in buffers:
        if key.endswith("num_batches_tracked"):
            buffers[key].fill_(2)
    fast = run(net, TaskPath.grouped, x, False, buffers)
    func = run(net, TaskPath.loop, x, False, buffers)
    for key in fast[2]:
        torch.testing.assert_close(fast[2][key], func[2][key], **TOLERANCE)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", ["kim_conv2", "conv4_omniglot"])
def test_second_order_maml_step_matches(name, training):
    """theta' = theta - lr * dL_support/dtheta per task, then d L_query(theta') / d theta, on both ways."""
    net = build(name).train(training)
    x = inputs(net, name)
    support, query = x[:, :3], x[:, 3:]
    buffers = {key: b.clone() for key, b in net.named_buffers()}

    def meta_gradient(path: TaskPath):
        net.load_state_dict(buffers, strict=False)
        theta = dict(net.named_parameters())
        weights = {key: p.unsqueeze(0).expand(TASKS, *p.shape) for key, p in theta.items()}
        inner = task_call(net, weights, support, path=path).square().sum()
        grads = torch.autograd.grad(inner, list(weights.values()), create_graph=True)
        adapted = {key: w - 0.1 * g for (key, w), g in zip(weights.items(), grads)}
        outer = task_call(net, adapted, query, path=path).tanh().sum()
        return torch.autograd.grad(outer, list(theta.values()))

    fast, func = meta_gradient(TaskPath.grouped), meta_gradient(torch_func_path(net))
    for a, b in zip(fast, func):
        torch.testing.assert_close(a, b, **TOLERANCE)
    assert max(g.abs().max().item() for g in func) > 1e-4
