"""Nets built from their config files as a run builds them: configs/model/<name>.yaml holds every
default, and a test states only the settings it is about."""

from __future__ import annotations

from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from conml.build import build
from tests.conftest import compose_config


@cache
def _settings(name: str) -> DictConfig:
    return compose_config([f"model={name}"]).model


def net_config(name: str, **settings: Any) -> DictConfig:
    """model=<name> with `settings` changed. A setting the file interpolates from another group (gpt2's
    `in_features: ${dataset.dims}`) is one the test states."""
    return OmegaConf.merge(_settings(name), settings)


def configured_net(name: str, **settings: Any) -> nn.Module:
    """The net of model=<name> with `settings` changed, built as a run builds it."""
    return build(net_config(name, **settings))
