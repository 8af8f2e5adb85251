"""Checkpoints that are never half-written, and the RNG states that make resumed runs exact."""

from __future__ import annotations

import dataclasses
import errno
import os
import pickle
import random
import re
import typing
from enum import Enum
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from conml.errors import DataError, UnsafeFileError, UserError


class OutputError(UserError):
    """A run's output could not be written (disk full, no permission)."""


def save_checkpoint(state: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename over `path`.

    A crash at any point leaves either the previous checkpoint or the new one, never a mix.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
            kept = f"The previous {path.name} is intact." if path.exists() else "No earlier checkpoint exists."
            raise OutputError(
                f"Could not write checkpoint {path}: {error.strerror}. {kept} Free space (or fix permissions), "
                f"or point paths.output_dir / CONML_OUTPUTS at another disk, then continue with resume={path.parent.parent}."
            ) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_partial_checkpoints(directory: Path) -> None:
    """Delete temporary files left by a process killed while writing a checkpoint."""
    for leftover in directory.glob(".*.pt.*.tmp"):
        leftover.unlink(missing_ok=True)


def numpy_globals() -> list[Callable | tuple[Callable, str]]:
    """What numpy arrays and scalars in a torch file need (the NumPy RNG state is a uint32 array); all build data only."""
    try:
        from numpy._core import multiarray, numeric  # numpy 2
    except ImportError:  # numpy 1
        from numpy.core import multiarray, numeric
    numbers = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
    numbers += [np.float16, np.float32, np.float64]
    builders = [
        ("multiarray", multiarray._reconstruct),
        ("multiarray", multiarray.scalar),
        ("numeric", numeric._frombuffer),
    ]
    allowed = [np.ndarray, np.dtype, *(type(np.dtype(t)) for t in numbers), *(f for _, f in builders)]
    if torch.torch_version.TorchVersion(torch.__version__) >= (2, 6):  # (object, name) entries: torch 2.6 on
        # A file written under numpy 1 names numpy.core, one written under numpy 2 numpy._core: both are accepted.
        allowed += [
            (f, f"{core}.{module}.{f.__name__}") for core in ("numpy.core", "numpy._core") for module, f in builders
        ]
    return allowed


def config_enums() -> list[type[Enum]]:
    """The enums a run's config can hold: those of the typed fields of the config schema."""
    from conml.config import TrainConfig  # here: conml.config imports much of the package

    found: set[type[Enum]] = set()
    schemas = [TrainConfig]
    while schemas:
        pending = list(typing.get_type_hints(schemas.pop()).values())
        while pending:
            hint = pending.pop()
            pending.extend(typing.get_args(hint))
            if isinstance(hint, type) and issubclass(hint, Enum):
                found.add(hint)
            elif dataclasses.is_dataclass(hint):
                schemas.append(hint)
    return sorted(found, key=lambda e: f"{e.__module__}.{e.__qualname__}")


# torch's messages when weights_only refuses a name in the file (it reports damaged pickles otherwise).
_REFUSAL = re.compile(
    r"GLOBAL (\S+)|unrecognized function ([^\n]+)|Can only (?:build|create new object)[^\n]* got ([^\n]+)"
)


def load_data_only(path: Path, allowed: list, holds: str, advice: str) -> object:
    """torch.load(path) with weights_only=True: tensors, containers, numbers, strings and `allowed` only.

    A file that names anything else raises UnsafeFileError (saying that it `holds` only that, then `advice`)
    before anything in it runs; other failures (a damaged file) reach the caller as torch raises them.
    """
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = _REFUSAL.search(str(error))
        if found is None:  # a damaged file: keep torch's diagnosis, without its advice to load unsafely
            detail = str(error).partition("WeightsUnpickler error:")[2].strip().split("\n")[0]
            raise pickle.UnpicklingError(detail or str(error).strip().split("\n")[-1]) from None
        name = next(g for g in found.groups() if g).strip()
        raise UnsafeFileError(
            f"{path} was not loaded: it names {name} for the unpickler to import and call, and {holds}. A file "
            f"that does this can run any code while it loads, so it was refused before anything in it ran. {advice}"
        ) from None


# Settings that configs/model/*.yaml and configs/dataset/*.yaml came to write after runs had been recorded without
# them, by config section and class. Such a run built its net or episode source with the value the class's signature
# then gave, the value the file writes now; its checkpoint's config is given that value, so that the run is rebuilt,
# evaluated and resumed as it ran.
WRITTEN_LATER = {
    "model": {
        "conml.nets.conv.ConvNet": {"stride": 1, "max_pool": True, "spatial_mean": False},
        "conml.nets.kim_conv.KimConvNet": {"track_running_stats": True},
    },
    "dataset": {"conml.data.images.source.FewShotImages": {"rotations": 1}},
}


def with_settings_written_later(config: dict) -> dict:
    """A run's recorded config with the settings it lacks from WRITTEN_LATER (in place; returned)."""
    for section, by_target in WRITTEN_LATER.items():
        node = config.get(section)
        if isinstance(node, dict):
            for key, value in by_target.get(node.get("_target_"), {}).items():
                node.setdefault(key, value)
    return config


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint onto the CPU, building data only; a damaged or unsafe file is named in the error. The
    run's config is completed with the net and source settings written after it was recorded (WRITTEN_LATER)."""
    if not path.is_file():
        raise DataError(f"Checkpoint {path} does not exist.")
    try:
        state = load_data_only(
            path,
            [*numpy_globals(), *config_enums()],
            holds="a checkpoint written by this project holds only tensors, numbers, strings, the run's settings and "
            "its RNG states",
            advice="The file was altered or comes from elsewhere: resume from another checkpoint of the run, or start "
            "the run again.",
        )
    except (EOFError, RuntimeError, pickle.UnpicklingError, OSError) as error:
        raise DataError(
            f"Checkpoint {path} cannot be read ({type(error).__name__}: {error}). It is damaged; "
            "resume from another checkpoint of the run or start the run again."
        ) from None
    if isinstance(state, dict) and isinstance(state.get("config"), dict):
        with_settings_written_later(state["config"])
    return state


def rng_states() -> dict:
    """Every RNG a run draws from: Python, NumPy, torch CPU and (if present) CUDA."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
