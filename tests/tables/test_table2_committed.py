"""Table 2 from committed results: an exported run (results.json and cached analyses, no checkpoint) rebuilds the
same table and all four Fig. 2 figures as its run folder, as `make table-2` does from docs/results/table2_20k/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conml.tables.cli import main

FIGURES = ("table2_representations", "table2_distances", "table2_mse_by_shots", "table2_mse_by_amplitude_shift")


def aggregated(runs_dir: Path, out: Path) -> dict:
    """`scripts/table.py aggregate table2 RUNS_DIR --mix` for seed 0 (--mix: a tiny run is not the cell's protocol)."""
    arguments = ["aggregate", "table2", str(runs_dir), "--seeds", "0", "--out", str(out), "--wandb-mode", "disabled"]
    assert main([*arguments, "--mix"]) == 0
    return json.loads((out / "table2.json").read_text())


def ours(table: dict) -> str:
    return json.dumps([(e["method"], e["metric"], e["ours"]) for e in table["entries"]])


def test_an_exported_run_rebuilds_the_table_and_its_figures_without_checkpoints(run_tiny, tmp_path):
    cell = ["dataset=sinusoid", "learner=maml", "experiment=sine/plain", "dataset.shots=10"]
    run_tiny([*cell, "eval.episodes=20", "eval.batch_size=10"], name="runs/sinusoid-maml-10shot-plain_s0")
    runs, committed = tmp_path / "runs", tmp_path / "committed"
    from_runs = aggregated(runs, tmp_path / "from_runs")
    assert any(e["ours"] is not None for e in from_runs["entries"] if e["metric"] == "Silhouette ↑")

    assert main(["export", "table2", str(runs), str(committed)]) == 0
    exported = committed / "sinusoid-maml-10shot-plain_s0"
    figure_2 = json.loads((exported / "analysis" / "figure_2.json").read_text())
    assert len(figure_2["tasks"]) == len(figure_2["pca"]) == len(figure_2["tsne"]) == 100
    assert sum(figure_2["d_in"]) + figure_2["d_in outside the bins"] == 20 * 10, "20 test tasks x 10 subsets"
    assert sum(figure_2["d_out"]) + figure_2["d_out outside the bins"] == 20 * 19 // 2, "every pair of test tasks"

    shutil.rmtree(runs)
    assert not list(committed.rglob("*.pt"))
    from_committed = aggregated(committed, tmp_path / "from_committed")
    assert ours(from_committed) == ours(from_runs)
    for figure in FIGURES:
        assert (tmp_path / "from_committed" / f"{figure}.png").stat().st_size > 10_000, figure
