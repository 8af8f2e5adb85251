"""The benchmark cases in the order they run; `--only` picks among them by id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from conml.benchmarks import gradient_share_case, icl_case, maml_cases, protonet_case, sampler_case
from conml.benchmarks.results import CaseResult
from conml.benchmarks.scale import BenchRun


@dataclass(frozen=True)
class Case:
    id: str
    summary: str
    run: Callable[[BenchRun], list[CaseResult]]


CASES = (
    Case("B1", "MAML 2nd order, Conv-4, B=4, vs higher and a per-task loop", maml_cases.b1),
    Case("B1b", "MAML 2nd order, Conv-4, B=32, vs higher and a per-task loop (+ GPU settings)", maml_cases.b1b),
    Case("B2", "FOMAML, Conv-4, B=32, vs higher and a per-task loop", maml_cases.b2),
    Case("B3", "ConML (K=1) cost over the same MAML", maml_cases.b3),
    Case("B4", "ProtoNet step, Conv-4-64, vs learn2learn's per-episode loop", protonet_case.b4),
    Case("B5", "in-context learning step, GPT-2, vs an eager fp32 loop", icl_case.b5),
    Case("B5b", "ConML-ICL (one pass) cost over the same ICL step, vs the two-pass ConML-ICL", icl_case.b5b),
    Case("B6", "episode sampling (images, sine waves) and its share of a step", sampler_case.b6),
    Case("B7", "measuring ConML's gradient share: its cost at the trainer's interval", gradient_share_case.b7),
    Case(
        "B8",
        "Omniglot MAML 5-way 1-shot (Finn et al.'s Conv-4), B=32, vs the torch.func pattern and a per-task loop",
        maml_cases.b8,
    ),
)
