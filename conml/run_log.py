"""`train.log`: a copy of everything a run prints, stdout and stderr, in its run folder.

What is printed before the run holds its folder is kept in memory and written when it does
(`attach`), so a refused run writes no log. A line redrawn with carriage returns (a progress bar)
is logged once, as it was last drawn.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any


class RunLog:
    """Copies sys.stdout and sys.stderr while active (`with RunLog() as log:`)."""

    def __init__(self):
        self._file: IO[str] | None = None
        self._held: list[str] | None = []  # lines printed before `attach`; None once discarded
        self._partial: dict[str, str] = {}
        self._streams: tuple[Any, Any] | None = None

    def __enter__(self) -> RunLog:
        self._streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Copy(sys.stdout, self, "out"), _Copy(sys.stderr, self, "err")
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = self._streams
        for text in self._partial.values():
            if text.rsplit("\r", 1)[-1].strip():
                self._line(text.rsplit("\r", 1)[-1])
        self._partial.clear()
        if self._file is not None:
            self._file.close()
            self._file = None

    def attach(self, path: Path) -> None:
        """From now on write to `path` (appending: a resumed run continues its log), starting with what was held."""
        self._file = open(path, "a", buffering=1)
        for line in self._held or []:
            self._file.write(line)
        self._held = []

    def discard(self) -> None:
        """Keep nothing (a process that writes no files)."""
        self._held = None

    def write(self, stream: str, text: str) -> None:
        lines = (self._partial.pop(stream, "") + text).split("\n")
        for line in lines[:-1]:
            self._line(line.rsplit("\r", 1)[-1])
        if lines[-1]:
            self._partial[stream] = lines[-1]

    def _line(self, line: str) -> None:
        if self._file is not None:
            self._file.write(line + "\n")
        elif self._held is not None:
            self._held.append(line + "\n")


class _Copy:
    """A text stream that also hands what is written to a RunLog."""

    def __init__(self, stream: Any, log: RunLog, name: str):
        self._stream, self._log, self._name = stream, log, name

    def write(self, text: str) -> int:
        self._log.write(self._name, text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
