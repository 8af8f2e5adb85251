"""A wrong config value stops the run at start-up with one clear message and no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from conml.errors import ConfigError
from conml.train import run
from tests.conftest import TINY, compose_config

# One case per layer that can refuse a value: Hydra's group lookup, the typed schema, and the
# `_target_` signature check. Each runs the real command line.
COMMAND_LINE_CASES = [
    (["learner=mamll"], ["learner/mamll", "maml", "fomaml"]),
    (["conml.lam=abc"], ["conml.lam", "abc"]),
    (["learner.inner_lr=abc"], ["learner.inner_lr", "float"]),
]


@pytest.mark.parametrize("overrides, expected", COMMAND_LINE_CASES, ids=[" ".join(c[0]) for c in COMMAND_LINE_CASES])
def test_bad_value_on_the_command_line_gives_one_clear_error(overrides, expected, tmp_path):
    command = [sys.executable, "-m", "conml.train", *overrides, "logger.mode=disabled", f"hydra.run.dir={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output, output
    for text in expected:
        assert text in output, output


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["conml.phi=euclid"], ["euclid", "cosine", "sigmoid_squared"]),
        (["conml.terms=all"], ["all", "alignment", "discrimination"]),
        (["trainer.stepz=3"], ["stepz"]),
    ],
)
def test_schema_refuses_unknown_keys_and_values(overrides, expected):
    with pytest.raises((HydraException, OmegaConfBaseException)) as error:
        compose_config(overrides)
    message = f"{error.value} {error.value.__cause__}"
    for text in expected:
        assert text in message, message


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["+learner.inner_lrr=0.1"], ["learner.inner_lrr", "inner_lr", "first_order"]),
        (["learner.inner_steps=0"], ["inner_steps"]),
        (["device=cuda:0"], ["no usable CUDA device", "device=cpu"]),
        (["conml.subset=support", "conml.num_subsets=3"], ["num_subsets", "conml.subset=random"]),
        (["model._target_=conml.nets.nope.Net"], ["cannot be imported", "conml.nets.nope.Net"]),
    ],
)
def test_start_up_checks_refuse_bad_settings(overrides, expected, tmp_path):
    with pytest.raises(ConfigError) as error:
        run(compose_config([*TINY, *overrides]), tmp_path)
    for text in expected:
        assert text in str(error.value)


def test_model_that_does_not_fit_the_data_is_refused_at_start_up(tmp_path):
    with pytest.raises(ConfigError, match=r"support inputs have shape \(1, 10, 1\)") as error:
        run(compose_config([*TINY, "model.in_features=3"]), tmp_path)
    assert "model.in_features" in str(error.value)
