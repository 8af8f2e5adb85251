"""conml.performance: typed in the run config, and a no-op on the CPU (CPU results stay exact)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from conml.learners.maml import MAML
from conml.objective import ConMLObjective, ConMLSettings
from conml.performance import PerformanceSettings, Precision, apply_performance
from conml.task_kind import CLASSIFICATION
from tests.conftest import compose_config
from tests.learner_settings import configured
from tests.net_settings import configured_net


def test_settings_are_part_of_the_typed_config():
    cfg = compose_config(["performance.precision=bf16", "performance.channels_last=true"])
    settings = OmegaConf.to_object(cfg.performance)
    assert isinstance(settings, PerformanceSettings)
    assert settings.precision is Precision.bf16 and settings.channels_last
    with pytest.raises(Exception, match="precision"):
        compose_config(["performance.precision=fp8"])


def test_cpu_runs_are_untouched():
    learner = configured(
        "maml", configured_net("conv4", hidden=4, blocks=2, out_features=3, image_size=8), CLASSIFICATION
    )
    objective = ConMLObjective(ConMLSettings())
    flags = (torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision())
    settings = PerformanceSettings(precision=Precision.bf16, channels_last=True, cudnn_benchmark=True)
    assert apply_performance(settings, torch.device("cpu"), learner, objective) is objective
    assert (torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision()) == flags
    assert all(p.is_contiguous() for p in learner.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_settings_apply():
    learner = configured(
        "maml", configured_net("conv4", hidden=4, blocks=2, out_features=3, image_size=8), CLASSIFICATION
    ).cuda()
    settings = PerformanceSettings(precision=Precision.bf16, channels_last=True, cudnn_benchmark=True)
    objective = apply_performance(settings, torch.device("cuda"), learner, ConMLObjective(ConMLSettings()))
    with objective.forward_context():
        assert torch.is_autocast_enabled("cuda")
    assert learner.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32


def test_a_run_with_every_setting_on_trains_on_the_cpu(run_tiny):
    summary, _ = run_tiny(
        ["performance.precision=bf16", "performance.channels_last=true", "performance.cudnn_benchmark=true"]
    )
    assert summary["steps"] == 4
