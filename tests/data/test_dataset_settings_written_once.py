"""An episode source's settings and their defaults are written once, in configs/dataset/<name>.yaml: its class
signature has no defaults, and the file sets every argument the builder does not supply (none). The same holds
for the targets nested in a dataset config (the function class and curriculum of in-context prompts, the
image augmentation of dataset/augmentation=<option>)."""

from __future__ import annotations

import inspect

import pytest
from hydra.utils import get_class
from omegaconf import DictConfig

from conml.build import SUPPLIED
from tests.conftest import CONFIGS, compose_config

DATASETS = sorted(path.stem for path in (CONFIGS / "dataset").glob("*.yaml"))
# The options of the dataset's own groups, each composed with a dataset that takes it.
GROUPS = {"augmentation": "miniimagenet"}
CASES = [[f"dataset={name}"] for name in DATASETS] + [
    [f"dataset={dataset}", f"dataset/{group}={path.stem}"]
    for group, dataset in GROUPS.items()
    for path in sorted((CONFIGS / "dataset" / group).glob("*.yaml"))
]


def targets(node: DictConfig, path: str = "dataset") -> dict[str, DictConfig]:
    """Every node of `node` (itself included) that names a `_target_`, by its dotted path."""
    found = {path: node} if "_target_" in node else {}
    for key, value in node.items():
        if isinstance(value, DictConfig):
            found.update(targets(value, f"{path}.{key}"))
    return found


def test_every_dataset_config_and_group_is_checked():
    assert {
        "linear_regression",
        "decision_tree",
        "relu_net",
        "sparse_linear_regression",
        "metadataset",
        "miniimagenet",
        "tieredimagenet",
        "omniglot",
        "same_different",
        "sinusoid",
    } <= set(DATASETS)
    assert {path.name for path in (CONFIGS / "dataset").iterdir() if path.is_dir()} == set(GROUPS)
    checked = {path for overrides in CASES for path in targets(compose_config(overrides).dataset)}
    assert {"dataset", "dataset.functions", "dataset.curriculum", "dataset.augmentation"} <= checked


@pytest.mark.parametrize("overrides", CASES, ids=lambda overrides: " ".join(overrides))
def test_the_config_file_holds_every_default(overrides):
    for path, node in targets(compose_config(overrides).dataset).items():
        parameters = inspect.signature(get_class(node._target_)).parameters.values()
        settings = [
            p
            for p in parameters
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and (path != "dataset" or p.name not in SUPPLIED["dataset"])
        ]
        assert [p.name for p in settings if p.default is not inspect.Parameter.empty] == [], (
            f"{path} ({node._target_}): a default in the signature would be a second copy of the YAML's"
        )
        assert sorted(p.name for p in settings) == sorted(key for key in node if key != "_target_"), (
            f"{path} ({node._target_}): the config sets every argument, and only those"
        )
