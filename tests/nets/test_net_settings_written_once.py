"""A network's settings and their defaults are written once, in configs/model/<name>.yaml: its class
signature has no defaults, and the file (with the files it inherits from) sets every argument the
builder does not supply. A file without a `_target_` (conv4_28, gpt2_tiny, ...) inherits one through
`defaults` and is checked as composed."""

from __future__ import annotations

import inspect

import pytest
from hydra.utils import get_class

from conml.build import SUPPLIED
from tests.conftest import CONFIGS, compose_config

MODELS = sorted(path.stem for path in (CONFIGS / "model").glob("*.yaml"))


def test_every_network_config_is_checked():
    assert {"conv4", "gpt2", "kim_conv2", "mlp", "resnet12", "resnet18_film"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_the_config_file_holds_every_default(name):
    node = compose_config([f"model={name}"]).model
    parameters = inspect.signature(get_class(node._target_).__init__).parameters
    settings = [p for p in parameters.values() if p.name != "self" and p.name not in SUPPLIED["model"]]
    assert [p.name for p in settings if p.default is not inspect.Parameter.empty] == [], (
        "a default in the signature would be a second copy of the YAML's"
    )
    assert sorted(p.name for p in settings) == sorted(key for key in node if key != "_target_")
