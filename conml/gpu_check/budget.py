"""The check's time budget: each part gets a share of the whole and ends its loop when the share is spent.

A part that finishes early leaves its time to the parts after it (deadlines are cumulative), and every
progress line says where the check stands against the whole budget, so an operator with a hard limit
(a GPU lease, a batch job) sees in time what will not fit.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class Budget:
    """`total` seconds for the whole check, split over parts by `shares` (fractions, in run order)."""

    total: float
    shares: dict[str, float]
    started: float = field(default_factory=time.perf_counter)
    part: str = ""
    part_started: float = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def deadline(self, part: str) -> float:
        """Seconds since the start by which `part` must end: the shares of it and of every part before it."""
        names = list(self.shares)
        return self.total * sum(self.shares[name] for name in names[: names.index(part) + 1])

    def begin(self, part: str) -> None:
        self.part, self.part_started = part, time.perf_counter()
        self.say(f"{part}: starts, may run until {self.deadline(part):.0f} s")

    def left(self) -> float:
        """Seconds the current part still has."""
        return self.deadline(self.part) - self.elapsed()

    def say(self, message: str) -> None:
        print(f"[gpu-check {self.elapsed():5.0f}/{self.total:.0f} s] {message}", file=sys.stderr, flush=True)

    def progress(self, done: int, total: int, item: str) -> None:
        """One line per item: what finished, and when the part will end at this pace."""
        spent = time.perf_counter() - self.part_started
        eta = spent / max(done, 1) * (total - done)
        self.say(f"{self.part} {done}/{total}: {item}; part ETA {eta:.0f} s ({self.left():.0f} s left in its budget)")
