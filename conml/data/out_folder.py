"""The folder a preparation script writes into, checked before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

from conml.errors import ConfigError


def check_out_folder(folder: Path, option: str, conml_data: str | None = None) -> None:
    """Refuse `folder` (given as `option`) unless it is a folder, or can be made one, that this user can write in.
    `conml_data`: CONML_DATA as the command read it, to name it when it is the file in the way."""
    folder = Path(folder)
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        what = "is a file" if existing == folder else f"cannot be made: {existing} is a file"
        raise ConfigError(
            f"{option} {folder} {what}, not a folder{_from_conml_data(existing, conml_data)}. The prepared data is a folder of "
            f"files: remove or rename that file, or choose another folder with {option}. Nothing was written."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{option} {folder}: this user cannot write in {existing}. Choose a writable folder with {option}, or "
            "change the folder's permissions. Nothing was written."
        )


def _from_conml_data(path: Path, data: str | None) -> str:
    """Where the default output folders come from, when that is the file in the way."""
    if data and Path(data).resolve() == path.resolve():
        return " (it is CONML_DATA, where the prepared datasets go: point CONML_DATA at a folder)"
    return ""
