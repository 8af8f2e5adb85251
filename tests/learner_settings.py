"""Learners built from their config files as a run builds them: configs/learner/<name>.yaml holds every
default, and a test states only the settings it is about."""

from __future__ import annotations

from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from conml.build import build
from conml.learners.base import Learner
from conml.task_kind import TaskKind
from tests.conftest import compose_config


@cache
def _settings(name: str) -> DictConfig:
    return compose_config([f"learner={name}"]).learner


def configured(name: str, net: nn.Module, kind: TaskKind, **settings: Any) -> Learner:
    """learner=<name> with `settings` changed, on `net` for tasks of `kind`."""
    return build(OmegaConf.merge(_settings(name), settings), net=net, kind=kind)
