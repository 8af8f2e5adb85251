"""A run's folder: held by one run at a time, written only once every check has passed, and left
exactly as it was by a run that is refused.

Hydra creates the run folder before the run starts. `MakeRunFolder`, a Hydra callback, creates it
first, one missing folder at a time, and notes which ones this process made; a refused run then
removes those again if they are still empty (`remove_unused`), and never touches a folder that
existed before. `hold` takes the folder for the run once its checks have passed: a lock that one
process holds until it exits (the kernel releases it even after kill -9, so a dead run's lock file
is simply taken over), the config record in `.hydra/`, and `train.log`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from conml.checkpoint import OutputError
from conml.errors import ConfigError, UserError, exit_with
from conml.run_log import RunLog

LOCK = ".lock"
STAMP_WAIT_S = 2.0  # how long a holder may take between locking its folder and stamping the lock file
# Folders this process made for its run (absolute paths); see MakeRunFolder.
_made: set[Path] = set()


class RunFolderBusy(UserError):
    """Another live run holds the folder."""


class MakeRunFolder(Callback):
    """Creates the run (or sweep) folder before Hydra does, noting the folders it made, and turns a
    folder that cannot be created into one paragraph instead of Hydra's traceback."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _made.clear()
        HydraConfig.instance().set_config(config)  # as Hydra does next: the folder's name may use ${hydra:...}
        _make(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _made.clear()
        HydraConfig.instance().set_config(config)
        _make(Path(config.hydra.sweep.dir))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Job folders are numbered, so every job folder of a sweep folder made here is new too.
        job = Path(config.hydra.runtime.output_dir)
        if config.hydra.mode == RunMode.MULTIRUN and job.parent in _made:
            _made.add(job)


def _make(folder: Path) -> None:
    folder = folder.absolute()
    if folder.exists() and not folder.is_dir():
        exit_with(
            ConfigError(
                f"The run folder {folder} is a file. A run folder holds checkpoints/, results.json and the logs; to continue "
                "a run, pass its folder (resume=<run folder>), not a file in it."
            )
        )
    for missing in reversed([f for f in (folder, *folder.parents) if not f.exists()]):
        try:
            missing.mkdir()
        except FileExistsError:  # made meanwhile by another process: not ours
            continue
        except OSError as error:
            exit_with(_unwritable(missing, error))
        _made.add(missing)


def _unwritable(folder: Path, error: OSError) -> OutputError:
    return OutputError(
        f"Cannot write the run folder {folder}: {error.strerror}. Choose a writable place with paths.output_dir=<folder> "
        "(or the CONML_OUTPUTS environment variable), or hydra.run.dir=<folder>. Nothing was written."
    )


def existed_before(folder: Path) -> bool:
    """Whether `folder` exists and was not made by this process for its run."""
    return folder.exists() and folder.absolute() not in _made


def remove_unused(folder: Path) -> None:
    """After a refused run: remove `folder` and the folders above it that this process made for the
    run, as long as they are empty. A folder that existed before, or holds anything, is kept."""
    for candidate in (folder.absolute(), *folder.absolute().parents):
        if candidate not in _made:
            return
        try:
            candidate.rmdir()
        except OSError:
            return
        _made.discard(candidate)


def remove_all_unused() -> None:
    """After an interrupt before the run knew its folder: every folder this process made, deepest first, while empty."""
    for folder in sorted(_made, key=lambda made: len(made.parts), reverse=True):
        remove_unused(folder)


def check_free(folder: Path) -> None:
    """Refuse a folder another live run holds, without writing anything."""
    holder = _holder(folder / LOCK)
    if holder is not None:
        raise RunFolderBusy(_busy(folder, holder))


def already_holds_a_run(folder: Path) -> ConfigError:
    return ConfigError(
        f"{folder} already holds a run (checkpoints/last.pt). Pass resume={folder} "
        "to continue it, or choose another hydra.run.dir; nothing was overwritten."
    )


@contextmanager
def hold(
    folder: Path, cfg: DictConfig, log: RunLog | None = None, active: bool = True, fresh: bool = False
) -> Iterator[None]:
    """The run's hold on `folder`: created, locked, its config recorded in `.hydra/` and what the run
    prints copied to `train.log`. Processes other than the main one (`active` False) write nothing.

    `fresh`: the run starts from nothing. The folder is checked again once locked, because a run that
    started into it after the run's own checks may have finished and let go of it meanwhile."""
    if not active:
        if log is not None:
            log.discard()
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = _lock(folder / LOCK)
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            raise
        raise _unwritable(folder, error) from None
    if fresh and (folder / "checkpoints" / "last.pt").exists():
        _unlock(folder / LOCK, descriptor)
        raise already_holds_a_run(folder)
    try:
        _record_config(folder, cfg)
        if log is not None:
            log.attach(folder / "train.log")
        yield
    finally:
        _unlock(folder / LOCK, descriptor)


def _lock(path: Path) -> int:
    """An exclusive lock on `path` (created if missing), stamped with who holds it."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RunFolderBusy(_busy(path.parent, _holder(path) or "another run")) from None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(descriptor).st_ino:  # not a lock file its last holder removed meanwhile
            break
        os.close(descriptor)
    os.ftruncate(descriptor, 0)
    os.write(
        descriptor,
        f"process {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(),
    )
    return descriptor


def _unlock(path: Path, descriptor: int) -> None:
    path.unlink(missing_ok=True)  # before unlocking, so that a waiting opener sees a new file and retries
    os.close(descriptor)


def _holder(path: Path) -> str | None:
    """Who holds the lock at `path`, or None when nobody does (no file, or the stale file of a dead run)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file, or one this process may not read (then taking the lock fails with the reason)
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _stamp(descriptor)
    finally:
        os.close(descriptor)


def _stamp(descriptor: int) -> str:
    """The holder's stamp. A holder writes it just after taking the lock, so a reader that comes in
    between finds the file empty: it reads again for up to STAMP_WAIT_S before naming no one."""
    deadline = time.monotonic() + STAMP_WAIT_S
    while True:
        stamp = os.pread(descriptor, 512, 0).decode(errors="replace").strip()
        if stamp or time.monotonic() > deadline:
            return stamp or "another run"
        time.sleep(0.01)


def _busy(folder: Path, holder: str) -> str:
    return (
        f"{folder} is in use by another run ({holder}); one run per folder. Wait for it to end, or choose another "
        "folder (hydra.run.dir=...); nothing was written."
    )


def _record_config(folder: Path, cfg: DictConfig) -> None:
    """The config as run, in `.hydra/` where Hydra would have put it (Hydra's own copy is switched off,
    so that a refused run cannot overwrite an earlier run's)."""
    record = folder / ".hydra"
    record.mkdir(exist_ok=True)
    (record / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        (record / "hydra.yaml").write_text(OmegaConf.to_yaml({"hydra": hydra}))
        (record / "overrides.yaml").write_text(OmegaConf.to_yaml(hydra.overrides.task))
