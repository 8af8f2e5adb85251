"""Every `_target_` group of a config against the signature of what it builds: unknown settings and wrong
types are refused at start-up with the settings that exist."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from conml.errors import ConfigError

# Keys of a `_target_` node that Hydra consumes itself.
_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def check_targets(cfg: DictConfig, supplied: dict[str, set[str]]) -> None:
    """Check every `_target_` group against the signature of what it builds.

    `supplied` names, per group, the arguments the entrypoint passes at build time (the learner's
    net, say), which the YAML must not need to set.
    """
    for group, extra in supplied.items():
        node = cfg.get(group)
        if node is not None:
            _check_node(node, group, extra)


def _check_node(node: DictConfig, path: str, supplied: set[str]) -> None:
    if "_target_" not in node:
        raise ConfigError(
            f"'{path}' has no _target_: say which class or function it builds, e.g. _target_: conml.learners.maml.MAML."
        )
    target = node._target_
    try:
        built = get_object(target)
    except Exception as error:  # noqa: BLE001 - any import failure is the user's bad path
        raise ConfigError(
            f"{path}._target_ '{target}' cannot be imported ({error}). Check the module path and class name."
        ) from None
    signature = inspect.signature(built)
    hints = _type_hints(built)
    parameters = {
        name: p for name, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    open_ended = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    allowed = sorted(set(parameters) - supplied)
    for key in node:
        if key in _HYDRA_KEYS:
            continue
        if key in supplied:
            raise ConfigError(
                f"{path}.{key} is supplied by the entrypoint at build time and cannot be set in the config."
            )
        if key not in parameters and not open_ended:
            raise ConfigError(f"{path}.{key} is not a setting of {target}. Its settings are: {', '.join(allowed)}.")
        if key in hints and not OmegaConf.is_missing(node, key):
            value = (
                OmegaConf.to_container(node[key], resolve=True)
                if isinstance(node[key], (DictConfig, ListConfig))
                else node[key]
            )
            if isinstance(node[key], DictConfig) and "_target_" in node[key]:
                continue
            if not _matches(value, hints[key]):
                raise ConfigError(
                    f"{path}.{key}={value!r} is not a valid {_describe(hints[key])} (a setting of {target})."
                )
    partial = node.get("_partial_", False)
    missing = [n for n, p in parameters.items() if p.default is p.empty and n not in node and n not in supplied]
    if missing and not partial:
        raise ConfigError(
            f"{path} lacks required setting(s) {', '.join(missing)} of {target}: set "
            f"{', '.join(f'{path}.{name}' for name in missing)} in its config file or on the command line. A run "
            "recorded before its config file wrote such a setting (when the class's signature still gave it a "
            "default) is completed from conml.checkpoint.WRITTEN_LATER: add the setting there with that default, or "
            "load the run with the version of the code that trained it."
        )


def _type_hints(built: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(built.__init__ if inspect.isclass(built) else built)
    except Exception:  # noqa: BLE001 - unresolvable hints: fall back to no type checks
        return {}


def _matches(value: Any, hint: Any) -> bool:
    """Whether a plain config value fits a type hint; hints it cannot judge pass."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list, typing.Sequence) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return all(_matches(v, args[0]) for v in value) if len(args) == 1 or Ellipsis in typing.get_args(hint) else True
    return True


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
