"""A run recorded before a config file came to write one of its net's or source's settings is rebuilt as it ran:
its checkpoint's config gets the value the file writes, which the class's signature gave when the run was recorded
(conml.checkpoint.WRITTEN_LATER)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from conml.build import build_source_and_learner
from conml.checkpoint import WRITTEN_LATER, load_checkpoint, save_checkpoint
from conml.errors import ConfigError
from tests.conftest import CONFIGS, compose_config

CASES = [(section, target) for section, by_target in WRITTEN_LATER.items() for target in sorted(by_target)]


def _written(section: str, target: str) -> dict:
    """The composed settings of the first file of the section that builds `target` with the values WRITTEN_LATER
    fills in (the file that held them as signature defaults before)."""
    for path in sorted((CONFIGS / section).glob("*.yaml")):
        node = compose_config([f"{section}={path.stem}", "device=cpu"])[section]
        if node.get("_target_") != target:
            continue
        written = OmegaConf.to_container(node, resolve=True)
        if all(written.get(key) == value for key, value in WRITTEN_LATER[section][target].items()):
            return written
    raise AssertionError(f"no file of configs/{section} writes {WRITTEN_LATER[section][target]} for {target}")


@pytest.mark.parametrize(("section", "target"), CASES)
def test_a_run_recorded_before_a_setting_was_written_is_rebuilt_as_it_ran(section, target, tmp_path):
    written = _written(section, target)
    recorded = {key: value for key, value in written.items() if key not in WRITTEN_LATER[section][target]}
    save_checkpoint({"config": {section: recorded}}, tmp_path / "last.pt")
    assert load_checkpoint(tmp_path / "last.pt")["config"][section] == written


def test_a_recorded_setting_is_kept(tmp_path):
    """Only what a run lacks is filled in: an Omniglot run's four rotations stay four."""
    dataset = {"_target_": "conml.data.images.source.FewShotImages", "rotations": 4}
    save_checkpoint({"config": {"dataset": dataset}}, tmp_path / "last.pt")
    assert load_checkpoint(tmp_path / "last.pt")["config"]["dataset"]["rotations"] == 4


def test_a_recorded_config_without_a_setting_the_code_now_requires_is_refused_in_one_paragraph():
    """A checkpoint older than WRITTEN_LATER knows (its config lacks a setting that the class no longer defaults) is
    named with the setting and the two ways out, not a TypeError from inside Hydra's instantiate."""
    recorded = OmegaConf.to_container(compose_config(["experiment=sine/plain", "device=cpu"]), resolve=True)
    del recorded["dataset"]["x_range"]
    with pytest.raises(ConfigError) as refused:
        build_source_and_learner(OmegaConf.create(recorded), torch.device("cpu"))
    message = str(refused.value)
    assert "dataset.x_range" in message and "WRITTEN_LATER" in message and "\n" not in message
