"""Benchmark results: one row per implementation, ratios against the subject, gates, targets, table and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from conml.benchmarks.gates import GateResult
from conml.benchmarks.timing import Timing


@dataclass
class Target:
    """A speed target judged on a case's timings: met when `value` < `limit`.

    Gates say whether the timings count; a target says what they show. A missed target voids
    nothing, and tests never assert one (speed belongs to `make bench`, not to timed unit tests).
    """

    name: str
    value: float
    limit: float
    unit: str = "%"

    @property
    def met(self) -> bool:
        return self.value < self.limit

    def as_dict(self) -> dict:
        return asdict(self) | {"met": self.met}

    def __str__(self) -> str:
        return (
            f"{self.name}: {'met' if self.met else 'MISSED'} ({self.value:.2f}{self.unit} < {self.limit:g}{self.unit})"
        )


@dataclass
class CaseResult:
    """One benchmark configuration: the subject (the project's implementation) and its peers.

    Timings are absent when a gate failed: they would not count.
    """

    case: str  # B1, B1b, ...
    title: str
    config: str
    subject: str
    gates: list[GateResult]
    timings: dict[str, Timing] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates if gate.blocking)

    def time_ratio(self, name: str) -> Optional[float]:
        """Time of `name` per iteration over the subject's (above 1: the subject is faster)."""
        if name not in self.timings or self.subject not in self.timings:
            return None
        return self.timings[name].median_ms / self.timings[self.subject].median_ms

    def as_dict(self) -> dict:
        return {
            "case": self.case,
            "title": self.title,
            "config": self.config,
            "subject": self.subject,
            "gates_passed": self.passed,
            "gates": [gate.as_dict() for gate in self.gates],
            "timings": {
                name: timing.as_dict() | {"time_vs_subject": self.time_ratio(name)}
                for name, timing in self.timings.items()
            },
            "targets": [target.as_dict() for target in self.targets],
            "notes": self.notes,
        }


def format_case(result: CaseResult) -> str:
    """A plain-text block: header, gates, one line per implementation, then targets and notes."""
    lines = [f"{result.case}  {result.title}  [{result.config}]"]
    lines += [f"    gate  {gate}" + ("" if gate.blocking else " [optional]") for gate in result.gates]
    if not result.passed:
        lines.append("    a gate failed: timings not taken")
    if result.timings:
        lines.append(
            f"    {'implementation':<44}{'ms/it (p10-p90)':>24}{'it/s':>10}{'time/subject':>14}{'peak MiB':>10}{'ATen ops':>10}"
        )
    for name, timing in result.timings.items():
        spread = f"{timing.median_ms:.2f} ({timing.p10_ms:.2f}-{timing.p90_ms:.2f})"
        memory = "-" if timing.peak_memory_mb is None else f"{timing.peak_memory_mb:.0f}"
        ops = "-" if timing.ops is None else f"{timing.ops:,}"
        ratio = result.time_ratio(name)
        relative = "-" if ratio is None else f"{ratio:.2f}x"
        lines.append(f"    {name:<44}{spread:>24}{timing.per_second:>10.2f}{relative:>14}{memory:>10}{ops:>10}")
    lines += [f"    target  {target}" for target in result.targets]
    lines += [f"    note: {note}" for note in result.notes]
    return "\n".join(lines)
