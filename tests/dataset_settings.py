"""Episode sources built from their config files as a run builds them: configs/dataset/<name>.yaml holds every
default, and a test states only the settings it is about.

The file is composed with the train config on the CPU (`device=cpu`) and its interpolations resolved
(`${seed}`, `${paths.data_dir}`, `${trainer.meta_batch_size}` take the default run's values); `settings` then
replace values of the file, nested ones as dicts (`curriculum={"interval": 7}`, `functions={"depth": 2}`),
and `overrides` choose other options of its groups (`dataset/augmentation=lee2019`)."""

from __future__ import annotations

from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

from conml.build import build
from conml.data.episode_source import EpisodeSource
from tests.conftest import compose_config


@cache
def _settings(name: str, overrides: tuple[str, ...]) -> DictConfig:
    cfg = compose_config([f"dataset={name}", "device=cpu", *overrides])
    return OmegaConf.create(OmegaConf.to_container(cfg.dataset, resolve=True))


def settings(name: str, *overrides: str, **changed: Any) -> DictConfig:
    """The resolved node dataset=<name> with `changed` settings replaced (not built)."""
    return OmegaConf.merge(_settings(name, overrides), changed)


def source(name: str, *overrides: str, **changed: Any) -> EpisodeSource:
    """dataset=<name> with `changed` settings replaced, built."""
    return build(settings(name, *overrides, **changed))


def part(name: str, key: str, *overrides: str, **changed: Any) -> Any:
    """The nested target `key` of dataset=<name> (its `functions`, `curriculum`, `augmentation`), with `changed`
    settings replaced, built on its own."""
    return build(OmegaConf.merge(_settings(name, overrides)[key], changed))


def arguments(name: str, *overrides: str, **changed: Any) -> dict[str, Any]:
    """The constructor arguments dataset=<name> gives its class (for a subclass a test defines), with `changed`
    settings replaced; nested targets stay configs."""
    node = OmegaConf.to_container(settings(name, *overrides, **changed))
    del node["_target_"]
    return node
