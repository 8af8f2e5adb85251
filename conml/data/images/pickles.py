"""Reading the pickles in which miniImageNet and tieredImageNet are commonly shared."""

from __future__ import annotations

import pickle
from pathlib import Path

from conml.errors import DataError


def load_pickle(path: Path) -> object:
    """Unpickle `path`; Python 2 pickles (tieredImageNet's) load with latin-1 strings, as numpy requires."""
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="latin1")
    except (
        EOFError,
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        MemoryError,
    ) as error:
        raise DataError(
            f"{path} cannot be unpickled ({type(error).__name__}: {error}). It is truncated or not the expected file; "
            "download or copy it again, then prepare the dataset again."
        ) from None


def require_keys(data: object, keys: tuple[str, ...], path: Path) -> dict:
    """`data` as a dict holding `keys`; bytes keys (Python 2 pickles) are read as strings."""
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a {type(data).__name__}, but a dict with keys {', '.join(keys)} was expected.")
    data = {(k.decode() if isinstance(k, bytes) else k): v for k, v in data.items()}
    missing = [k for k in keys if k not in data]
    if missing:
        raise DataError(
            f"{path} lacks the key(s) {', '.join(missing)} (it has {', '.join(map(str, data))}); it is not the expected file."
        )
    return data
