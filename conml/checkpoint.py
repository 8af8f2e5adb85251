"""Checkpoints that are never half-written, and the RNG states that make resumed runs exact."""

from __future__ import annotations

import errno
import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from conml.errors import DataError, UserError


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


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint onto the CPU; a damaged file is named in the error."""
    if not path.is_file():
        raise DataError(f"Checkpoint {path} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (EOFError, RuntimeError, pickle.UnpicklingError, OSError) as error:
        raise DataError(
            f"Checkpoint {path} cannot be read ({type(error).__name__}: {error}). It is damaged; "
            "resume from another checkpoint of the run or start the run again."
        ) from None


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
