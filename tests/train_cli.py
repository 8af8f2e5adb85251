"""`python -m conml.train ...` run in this process, and a fingerprint of a folder, for tests of what
a run prints, returns and leaves on disk."""

from __future__ import annotations

import hashlib
import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Finished:
    code: int
    out: str
    err: str


def train_cli(*arguments: str) -> Finished:
    """The real command line (Hydra, callbacks, main), without starting a new interpreter."""
    from conml.train import main

    argv, out, err = sys.argv, io.StringIO(), io.StringIO()
    sys.argv, code = ["conml.train", *arguments], 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.argv = argv
    return Finished(code, out.getvalue(), err.getvalue())


def checksums(folder: Path) -> dict[str, str]:
    """Every file (sha256) and folder under `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        for path in sorted(folder.rglob("*"))
    }
