"""Which runs a table was aggregated from, and the refusal to mix runs that do not belong in one table.

A folder such as outputs/ can hold smoke runs (two steps on tiny data) beside real ones, runs on
synthetic stand-in data, and runs of one preset at different step budgets; averaging those into one
cell gives a number that means nothing. `check_not_mixed` refuses such a table unless told otherwise; `describe` says, per preset,
which seeds, step budgets and folders the table's numbers come from.
Runs of one name can also be other experiments: an Optuna trial or a lambda sweep share a cell's name, group
and tags. `check_protocol` refuses runs whose settings differ from their cell's protocol (the config the cell's
overrides compose) in anything but what may vary between runs of a cell (NOT_THE_PROTOCOL).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any, Iterable

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from conml.composer import Composer
from conml.config import RESUMABLE_CHANGES, JobType
from conml.errors import ConfigError
from conml.tables.multirun import CONFIGS, SMOKE_DEBUG
from conml.tables.runs import Run
from conml.tables.spec import RunKey, Table
from conml.tables.table_sweep import every_sweep_cell, preset_overrides

# Settings that may differ between the runs of one cell: those a resumed run may change (where and how it ran and
# was tested, logging, its step budget, which check_not_mixed compares on its own), the seed, what made the run
# (provenance), and how many processes drew its tasks and how often its gradient share was measured.
NOT_THE_PROTOCOL = (*RESUMABLE_CHANGES, "seed", "name", "provenance", "trainer.workers", "trainer.grad_share_every")


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
    """A smoke run says so (provenance.job_type); one from before runs did is known by the smoke settings."""
    if run.setting("provenance.job_type") is not None:
        return run.setting("provenance.job_type") == JobType.smoke.value
    return all(str(run.setting(key)) == value for key, value in SMOKE_MARKS.items())


def is_synthetic(run: Run) -> bool:
    """Trained and tested on seeded stand-in data (`dataset.synthetic=true`, for machine checks), not the dataset."""
    return run.setting("dataset.synthetic") is True


def check_not_mixed(runs: list[Run]) -> None:
    """Refuse runs on synthetic data (smoke runs aside: a smoke table checks the pipeline, as Meta-Dataset's does on
    stand-in sources), smoke runs beside real ones, and runs of one preset at different step budgets."""
    synthetic = [run for run in runs if is_synthetic(run) and not is_smoke(run)]
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


def check_protocol(table: Table, runs: list[Run], overrides: Iterable[str] = ()) -> None:
    """Refuse runs of the table's cells whose settings differ from their cell's protocol, as composed from the cell's
    overrides (with `overrides`, those every job of a table's launch was given; with the table's smoke settings for
    smoke runs); settings in NOT_THE_PROTOCOL, and those a run's config lacks (runs from before a setting existed),
    are not compared. A table built in code whose cells no table sweep trains (configs/table/) has no protocol to
    compare with."""
    launched = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    swept = every_sweep_cell()
    cells: dict[tuple[RunKey, bool], list[Run]] = defaultdict(list)
    for run in runs:
        key = table.key_of(run.name, run.config)
        if key is not None and key.preset in swept:
            cells[key, is_smoke(run)].append(run)
    differing = []
    with Composer() as compose:
        for (key, smoke), found in cells.items():
            shrunk = [f"debug={SMOKE_DEBUG}", *(f"{k}={v}" for k, v in table.smoke.items())] if smoke else []
            where = [f"{path}={value}" for path, value in key.where]
            protocol = compose([*preset_overrides(key.preset), *_single([*shrunk, *launched]), *where])
            # Resolved before the next cell is composed: settings such as dataset.points read Hydra's choices.
            for run in found:
                changes = _changes(protocol, run)
                if changes:
                    job_type = run.setting("provenance.job_type")
                    made = f"; launched as job type {job_type}" if job_type not in (None, "table") else ""
                    differing.append(f"{_where(run)} (cell {key}: {'; '.join(changes)}{made})")
    if differing:
        raise ConfigError(
            f"{len(differing)} run(s) of {table.name}'s cells differ from their cell's protocol in settings the table "
            f"does not sweep (protocol -> run), so they are other experiments that share the cell's name, such as a "
            f"search trial or another sweep: {', '.join(differing)}. Aggregate the folder of the table's own runs (the "
            "sweep folder `scripts/table.py run` printed), or pass --mix to put them in the table anyway."
        )


def _single(overrides: list[str]) -> list[str]:
    """The overrides that set one value: a launch's swept values (dataset.held_out=lines,arrows) are its cells'."""
    parser = OverridesParser.create()
    return [o for o in overrides if not parser.parse_override(o).is_sweep_override()]


def _changes(protocol: DictConfig, run: Run) -> list[str]:
    """`key: protocol value -> run value` for every compared setting in which the run differs from the protocol, the
    protocol given the run's own values of the settings that may vary (so that what follows from them, such as
    dataset.seed from seed or a scheduler's length from trainer.steps, is compared as the run had it)."""
    own = copy.deepcopy(protocol)
    settings = _values(OmegaConf.to_container(protocol))
    for key, value in _values(run.config).items():
        if key in settings and _may_vary(key):
            OmegaConf.update(own, key, value, merge=False)
    expected = _values(OmegaConf.to_container(own, resolve=True, enum_to_str=True))
    found = _values(run.config)
    return [
        f"{key}: {_shown(expected[key])} -> {_shown(found[key])}"
        for key in sorted(expected.keys() & found.keys())
        if expected[key] != found[key] and not _may_vary(key)
    ]


def _may_vary(key: str) -> bool:
    return any(key == setting or key.startswith(f"{setting}.") for setting in NOT_THE_PROTOCOL)


def _values(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every value of a nested config by dotted path."""
    values: dict[str, Any] = {}
    for key, value in node.items():
        values.update(_values(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return values


def _shown(value: Any) -> str:
    return "null" if value is None else str(value)


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
