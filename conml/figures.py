"""Figures beside the paper tables: task models in 2-D, d_in / d_out distributions, error against shots.

Plotting only: callers hand over the numbers (conml/representation_analysis.py computes them).
Figures are written as PNG; conml/tables/wandb_table.py logs a table's figures to W&B.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure


def representation_figure(panels: dict[str, dict], path: Path, caption: str) -> Path:
    """One column per learner, rows PCA and t-SNE, of task models in 2-D coloured by task (ConML Fig. 2a/2d).

    A panel is {"tasks": [task of each model], "pca": [[x, y], ...], "tsne": [[x, y], ...]}.
    """
    figure = Figure(figsize=(3.2 * len(panels) + 1.2, 6.6), layout="constrained")
    axes = figure.subplots(2, len(panels), squeeze=False)
    colours = matplotlib.colormaps["tab10"]
    for column, (label, panel) in enumerate(panels.items()):
        names, task_index = np.unique(panel["tasks"], return_inverse=True)
        for row, method in enumerate(("pca", "tsne")):
            points = np.asarray(panel[method])
            ax = axes[row, column]
            for index, name in enumerate(names):
                chosen = task_index == index
                ax.scatter(points[chosen, 0], points[chosen, 1], color=colours(index % 10), s=12, label=f"task {name}")
            ax.set(xticks=[], yticks=[])
            ax.set_title(f"{label}\n({'PCA' if method == 'pca' else 't-SNE'})", fontsize="medium")
    axes[0, -1].legend(title="test task", loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small")
    figure.suptitle(caption, fontsize="medium")
    figure.savefig(path, dpi=130)
    return path


def distance_figure(histograms: dict[str, dict], path: Path) -> Path:
    """Histograms of d_in and d_out per learner (ConML Fig. 2b/2e), on a log axis: distances between
    adapted weights are heavy-tailed over several decades.

    A learner's histogram is {"bins": [edges], "d_in": [counts], "d_out": [counts]}; the axis spans the bins
    that any learner fills.
    """
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, key in zip(axes, ("d_in", "d_out")):
        filled = []
        for label, histogram in histograms.items():
            edges, counts = np.asarray(histogram["bins"]), np.asarray(histogram[key])
            ax.stairs(counts, edges, linewidth=1.4, label=label)
            used = np.flatnonzero(counts)
            if used.size:
                filled += [edges[used[0]], edges[used[-1] + 1]]
        if filled:
            ax.set_xlim(min(filled), max(filled))
        ax.set_xscale("log")
    axes[0].set(title="d_in: subset model vs whole-task model", xlabel="phi", ylabel="count")
    axes[1].set(title="d_out: whole-task models of different tasks", xlabel="phi")
    axes[1].legend()
    figure.savefig(path, dpi=130)
    return path


def curve_figure(
    curves: dict[str, tuple[list[float], list[float], list[float]]],
    path: Path,
    xlabel: str,
    ylabel: str,
    log_y: bool = False,
    title: str | None = None,
    band: str = "shaded: 95% CI over seeds",
    references: dict[str, tuple[list[float], list[float]]] | None = None,
) -> Path:
    """Error against shots (or another setting), one line (mean, with a band of ± spread) per learner (ConML Fig. 2c, 2f, 3).

    `references` are curves to compare against (Garg et al.'s baselines), drawn dashed without a band;
    on a linear axis the learners set the scale, since a reference can start far above them.
    """
    figure = Figure(figsize=(6, 4.4), layout="constrained")
    ax = figure.subplots()
    for label, (x, mean, spread) in curves.items():
        line = ax.plot(x, mean, marker="o", markersize=3, label=label)[0]
        ax.fill_between(x, np.subtract(mean, spread), np.add(mean, spread), color=line.get_color(), alpha=0.2)
    for label, (x, mean) in (references or {}).items():
        ax.plot(x, mean, linestyle="--", linewidth=1.2, label=label)
    ax.plot([], [], " ", label=band)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if log_y:
        ax.set_yscale("log")
    elif references:
        top = max(float(np.max(np.add(mean, spread))) for _, mean, spread in curves.values())
        ax.set_ylim(0.0, 1.25 * top)
    ax.legend()
    figure.savefig(path, dpi=130)
    return path
