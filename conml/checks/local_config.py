"""This machine's configs/local/default.yaml, checked before Hydra reads it."""

from __future__ import annotations

from pathlib import Path

import yaml
from hydra.plugins.config_source import ConfigSource
from omegaconf import OmegaConf

from conml.errors import ConfigError


def check_local_config(path: Path) -> None:
    """This machine's configs/local/default.yaml (git-ignored, written by hand), which every run merges: Hydra
    reports invalid YAML there as a traceback, and a missing package header as an unknown key `local`."""
    if not path.is_file():
        return
    try:
        content = OmegaConf.load(path)
        package = ConfigSource._get_header_dict(path.read_text())["package"]  # Hydra's own reading of the header
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = (
            f" ({error.context}, line {error.context_mark.line + 1})" if error.context and error.context_mark else ""
        )
        raise ConfigError(
            f"{path} is not valid YAML{where}: {error.problem}{context}. Fix it (configs/local/README.md shows the "
            "format), or move it aside to run without local settings."
        ) from None
    except (yaml.YAMLError, ValueError) as error:
        raise ConfigError(
            f"{path} cannot be read as a config: {error}. configs/local/README.md shows the format."
        ) from None
    if package is None:
        keys = f" ({', '.join(str(key) for key in content)})" if content else ""
        raise ConfigError(
            f"{path} does not start with the line `# @package _global_`, so Hydra reads its keys{keys} as settings of "
            "a section `local`, which the run does not have. Make `# @package _global_` its first line, before any "
            "other comment; configs/local/README.md shows an example."
        )
