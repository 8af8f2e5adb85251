"""Reading the pickles in which miniImageNet and tieredImageNet are commonly shared.

These files come from third-party mirrors, and a pickle may name any importable function for the
loader to call (one that names `os.system` runs a shell command). So they are read by an unpickler
that builds only what the known layouts hold: dicts, lists, tuples, strings, bytes, numbers and numpy
arrays. Any other name in the file is refused before it is imported, and nothing in the file runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from conml.errors import DataError, UnsafeFileError

_NUMPY_CORE = ("numpy.core", "numpy._core")  # numpy 1 writes the first, numpy 2 the second

# The names a dataset pickle may hold; containers, strings and numbers need none.
ALLOWED_GLOBALS = frozenset(
    {
        *((f"{core}.multiarray", "_reconstruct") for core in _NUMPY_CORE),  # an array (its __reduce__)
        *((f"{core}.multiarray", "scalar") for core in _NUMPY_CORE),  # a numpy scalar
        *((f"{core}.numeric", "_frombuffer") for core in _NUMPY_CORE),  # an array in a protocol-5 pickle
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # bytes in a protocol 0-2 pickle written by Python 3: _codecs.encode(text, 'latin1'), or bytes() if empty
        ("_codecs", "encode"),
        ("builtins", "bytes"),
        ("__builtin__", "bytes"),
    }
)

LAYOUTS = "dicts, lists, strings, numbers and numpy arrays"


class _Refused(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.qualified = f"{module}.{name}"


def _latin1_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """_codecs.encode as a Python 3 pickle uses it for bytes; other codecs are refused."""
    if encoding.lower().replace("-", "") != "latin1" or not isinstance(text, str):
        raise _Refused("_codecs", f"encode (with {encoding!r})")
    return text.encode("latin1")


def _empty_bytes(*args: object) -> bytes:
    """bytes() as a Python 3 pickle uses it for b''; bytes(n) would allocate n bytes, so only no arguments."""
    if args:
        raise _Refused("builtins", "bytes (with arguments)")
    return b""


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ALLOWED_GLOBALS:
            raise _Refused(module, name)
        if module == "_codecs":
            return _latin1_bytes
        if name == "bytes":
            return _empty_bytes
        return super().find_class(module, name)


def load_pickle(path: Path) -> object:
    """Unpickle `path`, building only data; Python 2 pickles (tieredImageNet's) load with latin-1 strings, as numpy requires."""
    try:
        with open(path, "rb") as handle:
            return _DataUnpickler(handle, encoding="latin1").load()
    except _Refused as refused:
        raise UnsafeFileError(
            f"{path} was not loaded: it names {refused.qualified} for the unpickler to import and call, and the "
            f"miniImageNet and tieredImageNet pickles hold only {LAYOUTS}. A pickle can run any code this way, so "
            "the file was refused before anything in it ran. It is not the dataset file it is named after, or it was "
            "altered: obtain the file again from the source docs/datasets_imagenet.md names (for miniImageNet, the "
            "images with the split CSV files need no pickle), then prepare the dataset again."
        ) from None
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
