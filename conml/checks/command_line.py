"""Command-line overrides checked before Hydra runs, so that two kinds of mistake get the project's paragraph.

- A misspelled key: Hydra refuses `learner.heda=1` at composition with "Key 'heda' is not in struct",
  while `+learner.heda=1` composes and reaches the project's checks, which list the settings that exist.
  Both are the same mistake, so both get the same paragraph.
- Several values without -m (`seed=0,1`): one paragraph says to add -m, unless the composed config runs as a
  multirun anyway (`hydra.mode: MULTIRUN`, as a search in configs/hparams_search/ sets).
- A sweep value that cannot be composed (`-m seed=0,abc`): Hydra refuses the whole multirun only after
  making its folder. Each value of each sweep is composed here first, and a bad one refuses the multirun
  before anything is written, naming the value. (A job refused by the project's checks, or one that fails
  while it runs, does not stop the others: `conml/train.py`.)

Anything else Hydra refuses (an unknown group option, bad syntax) is left to Hydra's own message.
"""

from __future__ import annotations

import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from conml.build import SUPPLIED
from conml.checks.settings import check_known_keys
from conml.checks.targets import check_targets
from conml.errors import ConfigError

_ABSENT = object()
# Command-line flags that leave the composed config as it is.
_MULTIRUN_FLAGS = {"-m", "--multirun"}
# Sweep values that can be written back as `key=value` without quoting.
_PLAIN_VALUE = re.compile(r"[\w.:/@+\-]*")


def check_overrides(arguments: list[str], configs: Path, config_name: str = "train") -> None:
    """Refuse a misspelled key as its `+` form is refused, and a sweep value that cannot be composed.

    Does nothing when the command holds flags that change the config (`--config-name`, `--cfg`...) or
    overrides Hydra cannot parse: Hydra then reports as it does.
    """
    flags = [a for a in arguments if a.startswith("-")]
    if any(flag not in _MULTIRUN_FLAGS for flag in flags):
        return
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in arguments if not a.startswith("-")])
    except HydraException:
        return
    sweeps = [o for o in overrides if o.is_sweep_override()]
    if sweeps and not flags and not _multirun_by_config(overrides, configs, config_name):
        listed = " ".join(o.input_line for o in sweeps)
        raise ConfigError(
            f"{listed} lists several values, which only a multirun runs (one job per value). Add -m to sweep over "
            "them, or quote the value (key='\"a,b\"') to pass it as one string."
        )
    probes = _probes(overrides)
    if probes is None:
        return
    for swept, probe in probes:
        _check_probe(probe, swept, configs, config_name)


def _multirun_by_config(overrides: list[Override], configs: Path, config_name: str) -> bool:
    """Whether the config these overrides choose runs as a multirun without -m (`hydra.mode: MULTIRUN`, as a
    search in configs/hparams_search/ sets). The sweeps are left out: they only list values."""
    plain = [o.input_line for o in overrides if not o.is_sweep_override()]
    composed, _ = _compose(configs, config_name, plain, hydra=True)
    return composed is not None and OmegaConf.select(composed, "hydra.mode", default=None) == RunMode.MULTIRUN


def _probes(overrides: list[Override]) -> list[tuple[str | None, list[str]]] | None:
    """Override lines to compose: every override at its first value, then each further value of each sweep
    with the others at their first (tagged with the swept `key=value`). None when a sweep cannot be listed."""
    values: list[list[str]] = []
    for override in overrides:
        if not override.is_sweep_override():
            values.append([override.input_line])
            continue
        try:
            listed = list(override.sweep_string_iterator())
        except HydraException:  # interval or tag sweeps (Optuna's): not a finite list
            return None
        if not listed or not all(_PLAIN_VALUE.fullmatch(v) for v in listed):
            return None
        prefix = override.input_line.split("=", 1)[0]
        values.append([f"{prefix}={v}" for v in listed])
    first = [options[0] for options in values]
    probes: list[tuple[str | None, list[str]]] = [(None, first)]
    for index, options in enumerate(values):
        for option in options[1:]:
            probes.append((option, [*first[:index], option, *first[index + 1 :]]))
    return probes


def _check_probe(lines: list[str], swept: str | None, configs: Path, config_name: str) -> None:
    composed, failure = _compose(configs, config_name, lines)
    if composed is not None:
        return
    overrides = OverridesParser.create().parse_overrides(lines)
    plain = [o for o in overrides if _sets_a_key(o, configs)]
    base = [o.input_line for o in overrides if o not in plain]
    composed, _ = _compose(configs, config_name, base)
    if composed is not None:
        for override in plain:
            if OmegaConf.select(composed, override.key_or_group, default=_ABSENT) is _ABSENT:
                _refuse_unknown_key(override, base, configs, config_name)
    if swept is not None:
        raise ConfigError(
            f"The multirun's value {swept} cannot be used: {failure}. Nothing was started or written; correct or "
            "remove that value and run the multirun again."
        )


def _refuse_unknown_key(override: Override, base: list[str], configs: Path, config_name: str) -> None:
    """The paragraph `+key=value` gets from the project's checks, or a plain one if they would let it pass."""
    added, _ = _compose(configs, config_name, [*base, f"+{override.input_line}"])
    if added is not None:
        check_targets(added, SUPPLIED)
        check_known_keys(added)
    raise ConfigError(
        f"{override.key_or_group} is not a setting of this configuration, so {override.input_line} cannot change it. "
        f"Correct its spelling, or add a new key with +{override.input_line}."
    )


def _sets_a_key(override: Override, configs: Path) -> bool:
    """A plain `key=value` (no +, ++ or ~) of a key, not a choice of config group and not a Hydra setting."""
    key = override.key_or_group
    if override.type != OverrideType.CHANGE or override.package is not None or key.split(".")[0] == "hydra":
        return False
    return "." in key or not (configs / key).is_dir()


def _compose(
    configs: Path, config_name: str, overrides: list[str], hydra: bool = False
) -> tuple[DictConfig | None, str]:
    """The configuration these overrides compose to (with Hydra's own settings if `hydra`), or None and why Hydra
    refuses them (its message and the cause's, one line)."""
    try:
        with initialize_config_dir(config_dir=str(configs.resolve()), version_base="1.3"):
            return compose(config_name, overrides=overrides, return_hydra_config=hydra), ""
    except (HydraException, OmegaConfBaseException) as error:
        parts = [str(error)] + ([str(error.__cause__)] if error.__cause__ is not None else [])
        return None, " ".join(p.splitlines()[0].rstrip(".") + "." for p in parts if p.strip()).rstrip(".")
