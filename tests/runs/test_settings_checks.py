"""Every numeric setting of the typed configs has a range that is checked at start-up, and settings
that cannot work together are refused with the fix. (What the command line prints for them, and
that nothing is written, is in tests/runs/test_run_folder.py.)"""

from __future__ import annotations

import dataclasses
import typing

import pytest

from conml.build import resolve_device
from conml.checks.settings import RANGES, check_evaluation, check_settings
from conml.config import TrainConfig
from conml.data.episode_source import EpisodeSource
from conml.errors import ConfigError, DataError
from tests.conftest import TINY, compose_config


def numeric_settings(schema: type, prefix: str = "") -> dict[str, set]:
    """Every int / float (or optional, or list of) field of a config dataclass, recursively: dotted path -> its number types."""
    settings = {}
    hints = typing.get_type_hints(schema)
    for spec in dataclasses.fields(schema):
        hint = hints[spec.name]
        if dataclasses.is_dataclass(hint):
            settings |= numeric_settings(hint, f"{prefix}{spec.name}.")
        elif {int, float} & _leaves(hint):
            settings[f"{prefix}{spec.name}"] = {int, float} & _leaves(hint)
    return settings


def _leaves(hint) -> set:
    arguments = typing.get_args(hint)
    return {leaf for argument in arguments for leaf in _leaves(argument)} if arguments else {hint}


SETTINGS = numeric_settings(TrainConfig)


def test_every_numeric_setting_has_a_range_and_every_range_a_setting():
    assert {"trainer.steps", "conml.lam", "eval.shots", "seed"} <= set(SETTINGS)
    assert sorted(SETTINGS) == sorted(RANGES), "add the new setting's range to conml/checks/settings.py RANGES"


def outside(path: str) -> float | int:
    """A value just outside the setting's range, of the setting's type."""
    allowed, integer = RANGES[path], SETTINGS[path] == {int}
    if allowed.high is not None:
        return allowed.high + 0.5
    if allowed.open_low:
        return int(allowed.low) if integer else float(allowed.low)
    return int(allowed.low) - 1 if integer else allowed.low - 0.5


@pytest.mark.parametrize("path", sorted(p for p in RANGES if RANGES[p].low is not None or RANGES[p].high is not None))
def test_a_value_outside_its_range_is_refused_with_the_range_and_a_valid_value(path):
    value = outside(path)
    override = f"{path}=[{value}]" if path == "eval.shots" else f"{path}={value}"
    with pytest.raises(ConfigError) as error:
        check_settings(compose_config([*TINY, override]))
    message = str(error.value)
    assert message.startswith(f"{path}=") and "is out of range" in message and "must be" in message
    assert f"e.g. {path}=" in message
    check_settings(compose_config(TINY))  # the defaults are in range


@pytest.mark.parametrize("path", ["conml.lam", "trainer.grad_clip"])
def test_non_finite_values_are_refused(path):
    for value in ("nan", "inf"):
        with pytest.raises(ConfigError, match=f"{path}={value} is out of range"):
            check_settings(compose_config([*TINY, f"{path}={value}"]))


def test_seed_may_be_any_integer():
    check_settings(compose_config([*TINY, "seed=-3"]))


@pytest.mark.parametrize(
    "override, refused",
    [
        ("learner.inner_lr=-0.5", True),
        ("learner.inner_lr=nan", True),
        ("optimizer.lr=0", True),
        ("learner.learn_inner_lr=true", False),
        ("optimizer.lr=0.002", False),
    ],
)
def test_learning_rates_must_be_positive(override, refused):
    cfg = compose_config([*TINY, override])
    if refused:
        with pytest.raises(ConfigError, match=r"a learning rate must be a finite number > 0"):
            check_settings(cfg)
    else:
        check_settings(cfg)


def test_a_setting_referring_to_one_the_combination_lacks_is_refused():
    with pytest.raises(
        ConfigError,
        match=r"model.in_features is \$\{dataset.dims\}, but this combination of settings cannot resolve it",
    ):
        check_settings(compose_config([*TINY, "model=gpt2_tiny"]))


@pytest.mark.parametrize(
    "overrides, allowed",
    [
        (["trainer.meta_batch_size=1"], False),
        (["trainer.meta_batch_size=1", "conml=discrimination"], False),
        (["trainer.meta_batch_size=1", "conml=alignment"], True),
        (["trainer.meta_batch_size=1", "conml=off"], True),
        (["trainer.meta_batch_size=2"], True),
    ],
)
def test_discrimination_needs_two_tasks_per_meta_batch(overrides, allowed):
    cfg = compose_config([*TINY, *overrides])
    if allowed:
        check_settings(cfg)
    else:
        with pytest.raises(ConfigError, match="needs at least 2 tasks per meta-batch"):
            check_settings(cfg)


@pytest.mark.parametrize(
    "override, named",
    [("+seeds=3", "seeds"), ("+trainer.step=3", "trainer.step"), ("+conml.lambda=0.3", "conml.lambda")],
)
def test_settings_the_project_does_not_know_are_refused(override, named):
    with pytest.raises(ConfigError, match=f"^{named} is not a setting this project knows"):
        check_settings(compose_config([*TINY, override]))


def test_impossible_meta_test_sizes_are_refused_before_training():
    class Source(EpisodeSource):
        def sample(self, split, first, count, shots=None, queries=None):
            if shots and shots > 20:
                raise DataError(f"a class of the {split} split has 20 images, fewer than {shots} support + queries")

    cfg = compose_config([*TINY, "eval.shots=[5,50]"])
    with pytest.raises(
        ConfigError,
        match=r"eval.shots=50, eval.queries=null: no meta-test task can be drawn \(a class of the test split has 20",
    ):
        check_evaluation(cfg, Source())


@pytest.mark.parametrize(
    "name, message",
    [
        ("tpu", "not a device this project runs on"),
        ("cuda:x", "not a device this project runs on"),
        ("cuda:99", "cuda"),
    ],
)
def test_device_names_are_checked(name, message):
    with pytest.raises(ConfigError, match=message):
        resolve_device(name)
