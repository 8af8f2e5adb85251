"""A learner's settings and their defaults are written once, in configs/learner/<name>.yaml: its class
signature has no defaults, and the file sets every argument the builder does not supply (net, kind)."""

from __future__ import annotations

import inspect

import pytest
from hydra.utils import get_class

from conml.build import SUPPLIED
from tests.conftest import CONFIGS, compose_config

LEARNERS = sorted(path.stem for path in (CONFIGS / "learner").glob("*.yaml"))


def test_every_learner_config_is_checked():
    assert {"maml", "fomaml", "reptile", "protonet", "matchingnet", "simple_cnaps", "icl", "conventional"} <= set(
        LEARNERS
    )


@pytest.mark.parametrize("name", LEARNERS)
def test_the_config_file_holds_every_default(name):
    node = compose_config([f"learner={name}"]).learner
    parameters = inspect.signature(get_class(node._target_).__init__).parameters
    settings = [p for p in parameters.values() if p.name != "self" and p.name not in SUPPLIED["learner"]]
    assert [p.name for p in settings if p.default is not inspect.Parameter.empty] == [], (
        "a default in the signature would be a second copy of the YAML's"
    )
    assert sorted(p.name for p in settings) == sorted(key for key in node if key != "_target_")
