"""A learner's, a network's and an episode source's settings and their defaults are written once, in the config
file a run composes (configs/learner/, configs/model/, configs/dataset/): the class signature has no defaults, and
the file (with the files it inherits from) sets every argument the builder does not supply. The same holds for the
targets nested in a config (the function class and curriculum of in-context prompts, the image augmentation of
dataset/augmentation=<option>). A file without a `_target_` (conv4_28, tieredimagenet, ...) inherits one through
`defaults` and is checked as composed."""

from __future__ import annotations

import inspect

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from conml.build import SUPPLIED
from tests.conftest import CONFIGS, compose_config

GROUPS = ("learner", "model", "dataset")
# The options of a group's own subgroups, each composed with an option of the group that takes it.
SUBGROUPS = {"dataset/augmentation": "dataset=miniimagenet"}
CASES = [(group, [f"{group}={path.stem}"]) for group in GROUPS for path in sorted((CONFIGS / group).glob("*.yaml"))] + [
    (subgroup.split("/")[0], [parent, f"{subgroup}={path.stem}"])
    for subgroup, parent in SUBGROUPS.items()
    for path in sorted((CONFIGS / subgroup).glob("*.yaml"))
]


def targets(node: dict, path: str) -> dict[str, dict]:
    """Every node of `node` (itself included) that names a `_target_`, by its dotted path."""
    found = {path: node} if "_target_" in node else {}
    for key, value in node.items():
        if isinstance(value, dict):
            found.update(targets(value, f"{path}.{key}"))
    return found


def composed(group: str, overrides: list[str]) -> dict:
    """The group's node as composed, interpolations left as written (gpt2's in_features reads the dataset's)."""
    return OmegaConf.to_container(compose_config(overrides)[group], resolve=False)


def test_every_config_and_subgroup_is_checked():
    options = {group: {overrides[0].split("=")[1] for g, overrides in CASES if g == group} for group in GROUPS}
    assert {"maml", "fomaml", "reptile", "protonet", "matchingnet", "simple_cnaps", "icl", "conventional"} <= options[
        "learner"
    ]
    assert {"conv4", "gpt2", "kim_conv2", "mlp", "resnet12", "resnet18_film"} <= options["model"]
    assert {"linear_regression", "decision_tree", "relu_net", "metadataset", "miniimagenet", "omniglot"} <= options[
        "dataset"
    ]
    assert {"same_different", "sinusoid", "tieredimagenet"} <= options["dataset"]
    subgroups = {f"{group}/{path.name}" for group in GROUPS for path in (CONFIGS / group).iterdir() if path.is_dir()}
    assert subgroups == set(SUBGROUPS)
    checked = {path for group, overrides in CASES for path in targets(composed(group, overrides), group)}
    assert {"dataset", "dataset.functions", "dataset.curriculum", "dataset.augmentation", "model", "learner"} <= checked


@pytest.mark.parametrize(
    ("group", "overrides"), CASES, ids=lambda case: " ".join(case) if isinstance(case, list) else case
)
def test_the_config_file_holds_every_default(group, overrides):
    for path, node in targets(composed(group, overrides), group).items():
        parameters = inspect.signature(get_class(node["_target_"])).parameters.values()
        settings = [
            p
            for p in parameters
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and (path != group or p.name not in SUPPLIED[group])
        ]
        assert [p.name for p in settings if p.default is not inspect.Parameter.empty] == [], (
            f"{path} ({node['_target_']}): a default in the signature would be a second copy of the YAML's"
        )
        assert sorted(p.name for p in settings) == sorted(key for key in node if key != "_target_"), (
            f"{path} ({node['_target_']}): the config sets every argument, and only those"
        )
