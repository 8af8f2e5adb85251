"""The measures table cells are made of: a test metric, a per-run analysis, relative gain and time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from conml.metrics import relative_gain
from conml.tables.runs import Run
from conml.tables.spec import Lookup, Measure, RunKey


@dataclass(frozen=True)
class MetaTestMetric:
    """A run's meta-test mean at `metrics` ('accuracy@5shot'); several are averaged (equal task counts)."""

    run: RunKey
    metrics: tuple[str, ...]

    def runs(self) -> tuple[RunKey, ...]:
        return (self.run,)

    def __call__(self, find: Lookup) -> float | None:
        found = find(self.run)
        if found is None or any(key not in found.test for key in self.metrics):
            return None
        return sum(found.test[key]["mean"] for key in self.metrics) / len(self.metrics)


@dataclass(frozen=True)
class GradShare:
    """A run's median ConML gradient share over training (results.json); None for runs without ConML."""

    run: RunKey

    def runs(self) -> tuple[RunKey, ...]:
        return (self.run,)

    def __call__(self, find: Lookup) -> float | None:
        found = find(self.run)
        return None if found is None else found.conml_grad_share


@dataclass(frozen=True)
class Analysis:
    """A per-run computation on the trained model (cached in the run folder), returning named numbers."""

    name: str
    compute: Callable[[Run], dict]


@dataclass(frozen=True)
class AnalysisValue:
    """One number of a run's analysis; a {mean, ...} entry gives its mean."""

    run: RunKey
    analysis: Analysis
    key: str

    def runs(self) -> tuple[RunKey, ...]:
        return (self.run,)

    def __call__(self, find: Lookup) -> float | None:
        found = find(self.run)
        result = None if found is None else found.analysis(self.analysis.name, self.analysis.compute)
        if result is None:
            return None
        value = result[self.key]
        return value["mean"] if isinstance(value, dict) else value


@dataclass(frozen=True)
class RelativeGain:
    """ConML's relative gain in percent: 100 * (sum of the ConML runs' metrics / that of the plain runs' - 1)."""

    plain: tuple[MetaTestMetric, ...]
    conml: tuple[MetaTestMetric, ...]

    def runs(self) -> tuple[RunKey, ...]:
        return tuple(m.run for m in (*self.plain, *self.conml))

    def __call__(self, find: Lookup) -> float | None:
        base = [m(find) for m in self.plain]
        better = [m(find) for m in self.conml]
        if None in base or None in better:
            return None
        return 100.0 * relative_gain(base, better)


@dataclass(frozen=True)
class RelativeTime:
    """Total meta-training time of the ConML runs over that of the plain runs."""

    plain: tuple[RunKey, ...]
    conml: tuple[RunKey, ...]

    def runs(self) -> tuple[RunKey, ...]:
        return (*self.plain, *self.conml)

    def __call__(self, find: Lookup) -> float | None:
        base = [find(key) for key in self.plain]
        better = [find(key) for key in self.conml]
        seconds = [None if run is None else run.train_seconds for run in (*base, *better)]
        if None in seconds:
            return None
        return sum(seconds[len(base) :]) / sum(seconds[: len(base)])


@dataclass(frozen=True)
class Difference:
    """One measure minus another on the same seed (ConML minus plain): over seeds, a paired comparison."""

    minuend: Measure
    subtrahend: Measure

    def runs(self) -> tuple[RunKey, ...]:
        return (*self.minuend.runs(), *self.subtrahend.runs())

    def __call__(self, find: Lookup) -> float | None:
        first, second = self.minuend(find), self.subtrahend(find)
        return None if first is None or second is None else first - second


@dataclass(frozen=True)
class TrainedSteps:
    """The meta-training steps a run was configured for (CPU-length runs train fewer than their protocol)."""

    run: RunKey

    def runs(self) -> tuple[RunKey, ...]:
        return (self.run,)

    def __call__(self, find: Lookup) -> float | None:
        found = find(self.run)
        return None if found is None else float(found.setting("trainer.steps"))
