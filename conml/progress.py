"""Progress of a loop: a tqdm bar on a terminal, plain lines in a file or a pipe.

A bar redraws itself with carriage returns several times a second, and a file (a SLURM output file,
`make train > log`) keeps every redraw. So the bar is drawn only when stdout and stderr are both
terminals; otherwise progress is one line at most every LINE_EVERY_S seconds, printed to stdout,
and a last line when a loop that keeps its bar (`leave`) ends:

    meta-train: step 1200/5000 (24%), loss 0.5321, 41.2 step/s, ETA 01:32

TQDM_DISABLE=1 (tqdm's own switch) turns both off: the entry points read it (`conml.launch.Launch.progress`)
and pass `disable`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterator, Sequence, TypeVar

from tqdm.auto import tqdm

# Seconds between two plain progress lines: about 120 lines an hour, whatever the speed of the loop.
LINE_EVERY_S = 30.0

Item = TypeVar("Item")


def on_terminal() -> bool:
    """Whether a redrawn bar reaches only terminals: stdout (prints) and stderr (the bar) both are one."""
    return all(_is_terminal(stream) for stream in (sys.stdout, sys.stderr))


def _is_terminal(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """`update()` once per unit of work, `set_postfix(loss=...)` for the values shown, `close()` at the end.

    `disable` shows nothing (the entry point's TQDM_DISABLE, or a process that is not the main one); `clock` and
    `every_s` are for tests.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        initial: int = 0,
        leave: bool = True,
        disable: bool = False,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.desc, self.unit, self.n, self.leave = total, desc, unit, initial, leave
        self.disabled = disable
        self.bar = None
        if not self.disabled and on_terminal():
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)
        self.every_s = LINE_EVERY_S if every_s is None else every_s
        self.clock = clock
        self.started = self.last_line = clock()
        self.first, self.shown_at = initial, initial
        self.postfix: dict[str, Any] = {}

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif not self.disabled and self.clock() - self.last_line >= self.every_s:
            self._print_line()

    def set_postfix(self, **values: Any) -> None:
        """Values shown from the next `update` on (on a terminal, beside the bar; elsewhere, in the next line)."""
        self.postfix = values
        if self.bar is not None:
            self.bar.set_postfix(**values, refresh=False)

    def write(self, text: str) -> None:
        """Print a message (a warning) without breaking the bar."""
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif not self.disabled and self.leave and self.n != self.shown_at:
            self._print_line()
        self.disabled = True  # a second close prints nothing

    def line(self) -> str:
        """Where the loop stands, in words: count, share, shown values, speed, and the time left or taken."""
        elapsed = self.clock() - self.started
        done = self.n - self.first
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        parts = [f"{self.desc}: {self.unit} {self.n}/{self.total}{share}"]
        parts += [f"{key} {value}" for key, value in self.postfix.items()]
        rate = done / elapsed if done and elapsed > 0 else None
        if rate is not None:
            parts.append(f"{rate:.3g} {self.unit}/s")
        if self.n >= self.total:
            parts.append(f"took {tqdm.format_interval(elapsed)}")
        elif rate is not None:
            parts.append(f"ETA {tqdm.format_interval((self.total - self.n) / rate)}")
        return ", ".join(parts)

    def _print_line(self) -> None:
        print(self.line(), flush=True)  # flushed: a file's stdout is block-buffered
        self.last_line, self.shown_at = self.clock(), self.n

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tracked(items: Sequence[Item], desc: str, unit: str, leave: bool = True, disable: bool = False) -> Iterator[Item]:
    """`items`, one by one, with their progress shown as `Progress` shows it."""
    with Progress(len(items), desc, unit, leave=leave, disable=disable) as progress:
        for item in items:
            yield item
            progress.update()
