"""Write a filled table as Markdown, LaTeX and JSON: paper, ours, their difference, seeds found.

One line per cell (method, metric), so that every table, whatever its shape in the paper, reads
the same way and a missing run is a visible line rather than a hole.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from conml.tables.aggregate import Aggregate, Entry
from conml.tables.spec import Column

HEADER = ("Method", "Metric", "Paper", "Ours", "Δ (ours − paper)", "Seeds")


def caption(result: Aggregate, command: str | None = None) -> str:
    """What was run and how ours is summarised: seeds, steps, test tasks, device, time."""
    table, runs = result.table, result.runs
    spread = "standard deviation" if table.spread == "std" else "95% CI (Student t)"
    parts = [f"{table.title}. Paper numbers: {table.source}."]
    found = sorted({run.seed for run in runs} & set(result.seeds))
    if found == sorted(result.seeds):
        parts.append(
            f"Ours: mean ± {spread} over seeds {list(result.seeds)} ({len(result.seeds)} per cell unless a cell says fewer)."
        )
    else:  # the caption names the seeds that were run, not those planned
        parts.append(
            f"Ours: mean ± {spread} over the seeds run so far, {found} of the planned {list(result.seeds)} "
            "(each cell's Seeds column says how many it has)."
        )
    if runs:
        steps = sorted({run.steps for run in runs})
        batch = sorted({run.setting("trainer.meta_batch_size") for run in runs} - {None})
        tasks = sorted({value.get("count") for run in runs for value in run.test.values()} - {None})
        devices = sorted({"cpu" if run.peak_memory_mb is None else "cuda" for run in runs if run.run_dir is not None})
        seconds = sum(run.train_seconds or 0.0 for run in runs)
        parts.append(
            f"Meta-training iterations per run: {_listing(steps)}"
            + (f" (meta-batches of {_listing(batch)} tasks)" if batch else "")
            + (f"; test tasks per run: {_listing(tasks)}" if tasks else "")
            + (f"; device: {', '.join(devices)}" if devices else "")
            + f"; {len(runs)} runs, {seconds / 60:.1f} min of meta-training in total."
        )
        jobs = "` job per cell and seed"
        parts.append(
            f"Trained with `{training_command(result, steps)}` or the same jobs run by hand: "
            f"one `python -m conml.train{jobs}{_swept(table)}."
        )
    else:
        parts.append("No runs were found.")
    parts += list(table.notes) + result.notes
    if command:
        parts.append(f"Command: `{command}`.")
    return " ".join(parts)


def training_command(result: Aggregate, steps: list[int]) -> str:
    """The command that trains a table's runs (with the step count the runs were trained for, when they share one)."""
    seeds = ",".join(str(seed) for seed in result.seeds)
    return f"python scripts/table.py run {result.table.name} --seeds {seeds}" + (
        f" trainer.steps={steps[0]}" if len(steps) == 1 else ""
    )


def _swept(table) -> str:
    grids = [", ".join(f"{key} in {{{values}}}" for key, values in sweep.items()) for sweep in table.sweeps]
    return "".join(f", {grid}" for grid in grids if grid) if len(grids) == 1 else ", over " + "; and ".join(grids)


def markdown(result: Aggregate, command: str | None = None) -> str:
    lines = [f"# {result.table.title}", "", caption(result, command), ""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "---|" * len(HEADER))
    for entry in result.entries:
        lines.append("| " + " | ".join(cells(entry)) + " |")
    return "\n".join(lines) + "\n"


def latex(result: Aggregate, command: str | None = None) -> str:
    rows = [" & ".join(_tex(text) for text in cells(entry)) + r" \\" for entry in result.entries]
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            r"\caption{" + _tex(caption(result, command)) + "}",
            r"\label{tab:" + result.table.name + "}",
            r"\begin{tabular}{llllll}",
            r"\toprule",
            " & ".join(_tex(h) for h in HEADER) + r" \\",
            r"\midrule",
            *rows,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    )


def as_json(result: Aggregate, command: str | None = None) -> str:
    entries = [
        {
            "method": e.cell.row,
            "metric": e.cell.column.header,
            "paper": None
            if e.cell.paper is None
            else {"value": e.cell.paper.value, "spread": e.cell.paper.spread, "text": e.cell.paper.text},
            "ours": {
                "mean": e.mean,
                "spread": e.spread,
                "seeds": len(e.found),
                "per_seed": {str(s): v for s, v in e.values.items()},
            },
            "difference": e.difference,
            "missing_seeds": e.missing_seeds,
        }
        for e in result.entries
    ]
    runs = [
        {"name": r.name, "seed": r.seed, "steps": r.steps, "where": str(r.run_dir or r.source)} for r in result.runs
    ]
    payload = {
        "table": result.table.name,
        "caption": caption(result, command),
        "seeds": list(result.seeds),
        "entries": entries,
        "runs": runs,
    }
    return json.dumps(payload, indent=2)


def write(result: Aggregate, out_dir: Path, command: str | None = None) -> dict[str, Path]:
    """<out_dir>/<table>.md, .tex and .json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result.table.name
    paths = {"md": out_dir / f"{name}.md", "tex": out_dir / f"{name}.tex", "json": out_dir / f"{name}.json"}
    paths["md"].write_text(markdown(result, command))
    paths["tex"].write_text(latex(result, command))
    paths["json"].write_text(as_json(result, command) + "\n")
    return paths


def cells(entry: Entry) -> list[str]:
    column, paper = entry.cell.column, entry.cell.paper
    expected = len(entry.values)
    seeds = f"{len(entry.found)}/{expected}"
    if entry.undefined_seeds:
        seeds += f" ({len(entry.undefined_seeds)} undefined)"
    if paper is None:
        paper_text = "—"
    elif paper.value is None:
        paper_text = paper.text or "—"
    else:
        paper_text = _number(paper.value, paper.spread, column)
    if entry.mean is not None:
        ours = _number(entry.mean, entry.spread, column)
    else:
        ours = "undefined" if entry.undefined_seeds else "missing"
    difference = "" if entry.difference is None else f"{entry.difference:+.{column.digits}{column.style}}{column.unit}"
    return [entry.cell.row, column.header, paper_text, ours, difference, seeds]


def _number(value: float, spread: float | None, column: Column) -> str:
    if not math.isfinite(value):
        return "undefined"
    text = f"{value:.{column.digits}{column.style}}"
    if spread is not None:
        text += f" ± {spread:.{column.digits}{column.style}}"
    return text + column.unit


def _listing(values: list) -> str:
    return ", ".join(str(v) for v in values)


_TEX = {
    "\\": r"\textbackslash{}",
    "%": r"\%",
    "_": r"\_",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "×": r"$\times$",
    "Δ": r"$\Delta$",
    "−": "--",
    "—": "---",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "≈": r"$\approx$",
    "§": r"\S{}",
    "<": r"$<$",
    ">": r"$>$",
    "`": "",
}


def _tex(text: str) -> str:
    return "".join(_TEX.get(char, char) for char in text)
