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


@pytest.mark.parametrize(
    "key, value",
    [("learner.heda", "1"), ("model.out_featurez", "3"), ("trainer.stepz", "3"), ("sede", "3")],
)
def test_a_misspelled_key_gets_the_same_paragraph_with_and_without_plus(key, value, tmp_path):
    """Hydra alone says "Key 'heda' is not in struct" without the +, and the project's list of settings with it."""
    from tests.train_cli import train_cli

    outputs = f"paths.output_dir={tmp_path / 'outputs'}"
    plain = train_cli(*TINY, f"{key}={value}", outputs)
    added = train_cli(*TINY, f"+{key}={value}", outputs)
    assert plain.code == added.code == 2
    assert plain.err == added.err and f"{key} is not a setting" in plain.err, plain.err
    assert "not in struct" not in plain.err
    assert not (tmp_path / "outputs").exists()


def test_a_multirun_value_that_cannot_be_composed_refuses_the_multirun_before_anything_is_written(tmp_path):
    from tests.train_cli import train_cli

    finished = train_cli("-m", *TINY, "seed=0,abc", f"paths.output_dir={tmp_path / 'outputs'}")
    assert finished.code == 2
    assert "The multirun's value seed=abc cannot be used" in finished.err and "Integer" in finished.err, finished.err
    assert not (tmp_path / "outputs").exists()


def test_several_values_without_multirun_say_to_add_m(tmp_path):
    from tests.train_cli import train_cli

    finished = train_cli(*TINY, "seed=0,1", f"paths.output_dir={tmp_path / 'outputs'}")
    assert finished.code == 2 and "only a multirun runs" in finished.err and "Add -m" in finished.err
    assert not (tmp_path / "outputs").exists()
