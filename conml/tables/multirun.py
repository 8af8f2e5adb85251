"""The Hydra multirun that fills a table: the sweep of configs/table/<table>.yaml x seeds, in one sweep folder.

Every run of one invocation lands under `<outputs>/tables/<table>/<date>_<time>/<job>/`, so the
table is aggregated from exactly the runs that invocation made; older sweeps stay untouched
and can be aggregated again (or together) with `scripts/table.py aggregate`.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

from conml.tables.spec import Table

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# The debug option (configs/debug/) every job of a smoke multirun composes; the table's own smoke settings go on top.
SMOKE_DEBUG = "smoke"


def sweep_parameters(
    table: Table, seeds: tuple[int, ...], smoke: bool, overrides: list[str], sweep: int = 0
) -> dict[str, str]:
    """Hydra overrides by key of the table's `sweep`-th multirun: seeds, that sweep's axes (configs/table/, the
    experiment axis included), the table's smoke shrinkage, then the user's (which win).

    Smoke shrinkage is `debug=smoke` and the table's own smoke settings. It spells out logger.mode=disabled
    as well, since `scripts/table.py run` reads from these parameters whether to log the table's figures to W&B.
    Keys of settings that only the presets' groups have (model.width of a transformer, say) carry
    Hydra's '++': the sweep's own config is composed before any preset is applied, where a plain
    override of a key the default groups lack would fail. '++key' and 'key' replace each other.
    """
    parameters = {"seed": ",".join(str(s) for s in seeds), **table.sweeps[sweep]}
    updates = [("debug", SMOKE_DEBUG), ("logger.mode", "disabled"), *table.smoke.items()] if smoke else []
    for override in overrides:
        key, separator, value = override.partition("=")
        if not separator:
            raise ValueError(f"'{override}' is not a Hydra override of the form key=value.")
        updates.append((key, value))
    for key, value in updates:
        for existing in [k for k in parameters if k.lstrip("+") == key.lstrip("+")]:
            del parameters[existing]
        parameters[key] = value
    return parameters


def output_root(parameters: dict[str, str], outputs: Path) -> Path:
    """Where runs go: paths.output_dir if overridden, else `outputs` ($CONML_OUTPUTS or outputs/, as
    configs/train.yaml says, read by the command)."""
    return Path(parameters.get("paths.output_dir") or outputs)


def new_sweep_dir(table: Table, parameters: dict[str, str], smoke: bool, outputs: Path) -> Path:
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return output_root(parameters, outputs) / "tables" / (f"{table.name}-smoke" if smoke else table.name) / stamp


def multirun(parameters: dict[str, str], sweep_dir: Path) -> int:
    """Run `python -m conml.train -m` over the parameters into `sweep_dir`; returns its exit status."""
    command = [
        sys.executable,
        "-m",
        "conml.train",
        "-m",
        *(f"{k}={v}" for k, v in parameters.items()),
        f"hydra.sweep.dir={sweep_dir}",
    ]
    print("+ python " + " ".join(command[1:]), flush=True)
    return subprocess.run(command).returncode
