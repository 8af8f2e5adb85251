"""Turn a composed config into the objects of a run: device, episode source, learner, optimizer."""

from __future__ import annotations

from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from conml.checks.fit import check_fit
from conml.checks.settings import check_learner_kind, check_ways
from conml.checks.targets import check_targets
from conml.errors import ConfigError, UserError

# Arguments supplied here when each `_target_` group is built, so configs never set them.
SUPPLIED = {
    "dataset": set(),
    "model": set(),
    "learner": {"net", "kind"},
    "optimizer": {"params"},
    "scheduler": {"optimizer"},
}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(
            f"device={name} is not a device this project runs on. Use device=auto (the GPU if there is one), cpu, cuda or cuda:N."
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={name} was requested but this machine has no usable CUDA device "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}). Use device=cpu or device=auto."
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device={name}: this machine has {torch.cuda.device_count()} CUDA device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}. Choose one of those, or device=auto."
        )
    return device


def build(node: DictConfig, **supplied: Any) -> Any:
    """instantiate(), letting our own errors from constructors through unwrapped, and turning a
    value a constructor refuses (ValueError, e.g. torch's "Invalid learning rate") into a ConfigError."""
    try:
        return instantiate(node, **supplied)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        if isinstance(error.__cause__, ValueError):
            group = node._get_full_key(None) or "the config"
            raise ConfigError(
                f"{group} ({node._target_}) refuses its settings: {error.__cause__}. Correct that value among the {group}.* settings."
            ) from None
        raise


def build_source_and_learner(cfg: DictConfig, device: torch.device):
    """The episode source and the learner (its net built from `model`), on `device`, checked to fit each other.
    The settings are checked against the classes first: a recorded config (a checkpoint's) may lack one that the
    code now requires."""
    check_targets(cfg, SUPPLIED)
    source = build(cfg.dataset)
    check_learner_kind(cfg, source.kind)
    check_ways(cfg, source.kind)
    learner = build(cfg.learner, net=build(cfg.model), kind=source.kind).to(device)
    check_fit(cfg, source, learner, device)
    return source, learner
