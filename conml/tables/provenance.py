"""Which runs a table was aggregated from, and the refusal to mix runs that do not belong in one table.

A folder such as outputs/ can hold smoke runs (two steps on tiny data) beside real ones, runs on
synthetic stand-in data, and runs of one preset at different step budgets; averaging those into one
cell gives a number that means nothing. `check_not_mixed` refuses such a table unless told otherwise; `describe` says, per preset,
which seeds, step budgets and folders the table's numbers come from.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import yaml

from conml.errors import ConfigError
from conml.tables.multirun import CONFIGS, SMOKE_DEBUG
from conml.tables.runs import Run


def _leaves(node: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Every value of a nested config by dotted path, as text."""
    leaves: dict[str, str] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        leaves.update(_leaves(value, f"{path}.") if isinstance(value, dict) else {path: str(value)})
    return leaves


# What marks a smoke run: the settings of the smoke multirun's debug option (logging aside, which a user may change).
SMOKE_MARKS = {
    path: value
    for path, value in _leaves(yaml.safe_load((CONFIGS / "debug" / f"{SMOKE_DEBUG}.yaml").read_text())).items()
    if not path.startswith("logger.")
}


def is_smoke(run: Run) -> bool:
    return all(str(run.setting(key)) == value for key, value in SMOKE_MARKS.items())


def is_synthetic(run: Run) -> bool:
    """Trained and tested on seeded stand-in data (`dataset.synthetic=true`, for machine checks), not the dataset."""
    return run.setting("dataset.synthetic") is True


def check_not_mixed(runs: list[Run]) -> None:
    """Refuse runs on synthetic data, smoke runs beside real ones, and runs of one preset at different step budgets."""
    synthetic = [run for run in runs if is_synthetic(run)]
    if synthetic:
        raise ConfigError(
            f"{len(synthetic)} of the runs found used dataset.synthetic=true (e.g. {_where(synthetic[0])}): seeded "
            "stand-in data of the real shapes, for `make gpu-check` and memory plans, whose accuracies are not results. "
            "Aggregate runs on the prepared dataset (docs/datasets_imagenet.md), or pass --mix to tabulate them anyway "
            "(to check the pipeline)."
        )
    smoke = [run for run in runs if is_smoke(run)]
    if smoke and len(smoke) < len(runs):
        raise ConfigError(
            f"The runs found mix {len(smoke)} smoke run(s) (two steps on tiny data, e.g. {_where(smoke[0])}) with "
            f"{len(runs) - len(smoke)} real one(s). Aggregate one sweep folder at a time (the folder `scripts/table.py run` "
            "printed), or pass --mix to put them in one table anyway."
        )
    steps: dict[str, dict[int, Run]] = defaultdict(dict)
    for run in runs:
        steps[run.name].setdefault(run.setting("trainer.steps"), run)
    for preset, by_steps in steps.items():
        if len(by_steps) > 1:
            examples = "; ".join(f"{count} steps: {_where(run)}" for count, run in by_steps.items())
            raise ConfigError(
                f"The runs of {preset} were trained for different numbers of steps ({examples}), so their seeds cannot be "
                "averaged into one cell. Aggregate runs of one step budget (one sweep folder), or pass --mix to do it anyway."
            )


def describe(runs: list[Run]) -> str:
    """One line per preset: the seeds, step budgets and folders its cells were computed from."""
    by_preset: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_preset[run.name].append(run)
    lines = [f"Aggregated {len(runs)} run(s) of {len(by_preset)} preset(s):"]
    for preset, found in by_preset.items():
        seeds = ", ".join(str(s) for s in sorted({run.seed for run in found}))
        steps = ", ".join(str(s) for s in sorted({run.setting("trainer.steps") for run in found}, key=str))
        folders = ", ".join(sorted({_folder(run) for run in found}))
        lines.append(f"  {preset}: seeds {seeds}; {steps} steps{_marks(found)}; from {folders}")
    return "\n".join(lines)


def _marks(runs: list[Run]) -> str:
    marks = [mark for mark, test in (("smoke", is_smoke), ("synthetic data", is_synthetic)) if all(map(test, runs))]
    return f" ({', '.join(marks)})" if marks else ""


def _folder(run: Run) -> str:
    """The sweep folder a local run lies in (its run folder's parent), or where a remote run came from."""
    return str(run.run_dir.parent) if run.run_dir is not None else run.source.rsplit("/", 1)[0]


def _where(run: Run) -> str:
    return str(run.run_dir) if run.run_dir is not None else run.source
