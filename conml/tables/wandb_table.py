"""A paper table in W&B: one run of job type 'table' holding the table as a `wandb.Table` and its figures.

The run's config names the table (`{"table": <name>, "job_type": "table"}`). It goes where a dashboard
shows it beside the table's training runs: their project, the group they share (a training run's group is
its `logger.group`, else its run name; runs of several groups leave the table in a group of its own, named
after the table), and every tag they carry plus the table's name, so filtering the runs table by a cell's
tag (`miniimagenet`, `conml`) or by the table's name shows the table run too. Its W&B files go to the
folder the caller names (the table's output folder), never into a run folder.
"""

from __future__ import annotations

from pathlib import Path

from conml.config import WandbMode
from conml.tables import render
from conml.tables.aggregate import Aggregate

JOB_TYPE = "table"


def placement(result: Aggregate) -> dict:
    """The project, entity, group and tags of the table's W&B run, from those of the runs it was built from."""
    runs, name = result.runs, result.table.name
    groups = {run.setting("logger.group") or run.name for run in runs}
    tags = {str(tag) for run in runs for tag in run.setting("logger.tags") or []}
    return {
        "project": next((r.setting("logger.project") for r in runs if r.setting("logger.project")), "conml"),
        "entity": next((r.setting("logger.entity") for r in runs if r.setting("logger.entity")), None),
        "group": groups.pop() if len(groups) == 1 else name,
        "tags": [name, *sorted(tags - {name})],
    }


def rows(result: Aggregate) -> tuple[list[str], list[list[str]]]:
    """The table's columns and rows as its Markdown has them: method, metric, paper, ours, Δ, seeds."""
    return list(render.HEADER), [render.cells(entry) for entry in result.entries]


def log_table(result: Aggregate, figures: list[Path], mode: str, directory: Path) -> Path | None:
    """Log the table and `figures` to one W&B run whose files go under `directory`; returns the run's folder
    (None when W&B is disabled)."""
    if WandbMode(mode) == WandbMode.disabled:
        return None
    import wandb

    name = result.table.name
    directory.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        **placement(result),
        job_type=JOB_TYPE,
        name=f"{name}-table",
        config={"table": name, "job_type": JOB_TYPE},
        dir=str(directory),
        mode=mode,
        settings=wandb.Settings(console="off"),
    )
    try:
        columns, data = rows(result)
        run.log({"table": wandb.Table(columns=columns, data=data), **{p.stem: wandb.Image(str(p)) for p in figures}})
        return Path(run.dir).parent
    finally:
        run.finish()
