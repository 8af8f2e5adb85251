"""Upload every offline W&B run under a run or multirun folder: `make wandb-sync DIR=<folder>`.

python -m conml.wandb_sync outputs/multirun/<date>_<time>

A run logs to `<run folder>/wandb/offline-run-<date>_<time>-<id>/`; a resumed run adds one such folder
per resume, all with the same id. `wandb sync` uploads the folders of one run in order of start time,
so the resumed parts continue the same W&B run.
"""

from __future__ import annotations

import netrc
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from conml.errors import UserError, exit_with

DEFAULT_HOST = "https://api.wandb.ai"


def offline_runs(root: Path) -> list[Path]:
    """Every offline run folder under `root` (one holding a run-*.wandb file), grouped by run folder and
    in order of start time within it (the folder names start with the date and time)."""
    found = {path.parent for path in root.rglob("offline-run-*/run-*.wandb")}
    return sorted(found, key=lambda folder: (str(folder.parent), folder.name))


def has_api_key() -> bool:
    """Whether `wandb login` has been done: WANDB_API_KEY is set, or the netrc file (NETRC, else ~/.netrc)
    has an entry for the W&B host (WANDB_BASE_URL, else api.wandb.ai)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or DEFAULT_HOST).hostname
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return netrc.netrc(str(path)).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def sync_command(root: Path) -> list[str]:
    """The `wandb sync` command for every offline run under `root`; refuses when there is nothing to sync or
    no API key to sync with."""
    if not root.is_dir():
        raise UserError(
            f"DIR={root} is not a folder. Pass a run folder (outputs/<name>/<date>_<time>) or a multirun folder "
            "(outputs/multirun/<date>_<time>): every offline W&B run under it is uploaded."
        )
    runs = offline_runs(root)
    if not runs:
        raise UserError(
            f"There is no offline W&B run under {root} (no wandb/offline-run-*/run-*.wandb): runs with "
            "logger.mode=disabled log none, and runs with logger.mode=online are uploaded as they run."
        )
    if not has_api_key():
        raise UserError(
            f"Found {len(runs)} offline W&B run folder(s) under {root}, but no W&B API key to upload them with: "
            "WANDB_API_KEY is not set and ~/.netrc has no entry for "
            f"{urlparse(os.environ.get('WANDB_BASE_URL') or DEFAULT_HOST).hostname}. Run `uv run wandb login` "
            "once (it asks for the key from https://wandb.ai/authorize), or set WANDB_API_KEY, then run "
            "`make wandb-sync` again. Nothing was uploaded."
        )
    return [sys.executable, "-m", "wandb", "sync", *map(str, runs)]


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        exit_with(UserError("usage: python -m conml.wandb_sync <run or multirun folder>  (make wandb-sync DIR=...)"))
    try:
        command = sync_command(Path(arguments[0]))
    except UserError as error:
        exit_with(error)
    print(f"Uploading {len(command) - 4} offline W&B run folder(s) under {arguments[0]}.", flush=True)
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
