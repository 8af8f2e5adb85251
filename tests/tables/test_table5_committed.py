"""Table 5 from committed results: the exported results.json and cached analyses of each run rebuild the
same table and figures (Garg et al.'s baselines included) as the run folders, once their checkpoints are gone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conml.figures import curve_figure
from conml.tables import table5
from conml.tables.cli import main

# On top of debug=tiny: the one-layer transformer of Table 5's smoke settings.
ICL_TINY = ["++model.width=16", "++model.depth=1", "++model.heads=2"]
CONML = {"plain": "off", "conml": "icl"}
BASELINES = ["least squares", "averaging", "3-nearest neighbours"]
FIGURE = "table5_linear_regression_curves.png"


@pytest.fixture
def legends(monkeypatch) -> dict[str, list[str]]:
    """The legend entries of each curve figure Table 5 draws, by file name (the last drawing of each)."""
    drawn: dict[str, list[str]] = {}

    def recording(curves, path, *args, references=None, **kwargs):
        drawn[path.name] = [*curves, *(references or {})]
        return curve_figure(curves, path, *args, references=references, **kwargs)

    monkeypatch.setattr(table5, "curve_figure", recording)
    return drawn


def aggregated(runs_dir: Path, out: Path) -> dict:
    """The table JSON that `scripts/table.py aggregate table5 RUNS_DIR --mix` writes for seeds 0 and 1 (--mix: the tiny
    runs that stand in for the committed ones are not the cells' protocol)."""
    arguments = ["aggregate", "table5", str(runs_dir), "--seeds", "0,1", "--out", str(out), "--wandb-mode", "disabled"]
    arguments.append("--mix")
    assert main(arguments) == 0
    return json.loads((out / "table5.json").read_text())


def ours(table: dict) -> str:
    """Every cell's numbers as text (a never-reached shot spare is NaN, which equals nothing as a float)."""
    return json.dumps([(e["method"], e["metric"], e["ours"]) for e in table["entries"]])


def test_exported_runs_rebuild_the_table_and_its_figures_without_checkpoints(run_tiny, tmp_path, legends, capsys):
    for seed in (0, 1):
        for variant in ("plain", "conml"):
            run_tiny(
                [
                    "experiment=icl/toy",
                    "dataset=linear_regression",
                    f"conml={CONML[variant]}",
                    f"seed={seed}",
                    *ICL_TINY,
                ],
                name=f"table5_toy/linear_regression_{variant}_s{seed}",
            )
    runs, committed = tmp_path / "table5_toy", tmp_path / "committed"
    from_runs = aggregated(runs, tmp_path / "from_runs")
    linear = [e for e in from_runs["entries"] if e["method"] == "LR (10 shot)"]
    assert len(linear) == 2 and all(v is not None for e in linear for v in e["ours"]["per_seed"].values())
    assert legends[FIGURE] == ["ICL (2 seeds)", "ConML-ICL (2 seeds)", *BASELINES]
    assert not list(runs.rglob("analysis")), "aggregating reads run folders, never writes into them"

    assert main(["export", "table5", str(runs), str(committed)]) == 0
    assert not list(runs.rglob("analysis")), "an export writes its analyses into its own folder"
    assert main(["export", "table5", str(runs), str(committed)]) == 0  # the same runs again: nothing to do
    assert capsys.readouterr().out.count(": unchanged") == 4
    curve = committed / "linear_regression_plain_s0" / "analysis" / "icl_curve.json"
    exported = curve.read_text()
    curve.write_text(exported.replace('"mean": [', '"mean": [1.0, ', 1))
    assert main(["export", "table5", str(runs), str(committed)]) == 2
    assert "already holds a different result" in capsys.readouterr().err
    curve.write_text(exported)

    shutil.rmtree(runs)
    files = sorted(str(p.relative_to(committed)) for p in committed.rglob("*") if p.is_file())
    assert files == sorted(
        f"linear_regression_{variant}_s{seed}/{name}"
        for seed in (0, 1)
        for variant in ("plain", "conml")
        for name in ("results.json", "analysis/icl_curve.json", "analysis/icl_baselines.json")
    )
    legends.clear()
    from_committed = aggregated(committed, tmp_path / "from_committed")
    assert ours(from_committed) == ours(from_runs)
    assert legends[FIGURE] == ["ICL (2 seeds)", "ConML-ICL (2 seeds)", *BASELINES]
    assert (tmp_path / "from_committed" / FIGURE).stat().st_size > 10_000

    # Before a seed's ConML run is there, its ICL run stays out of the figure: both curves average the same seeds.
    shutil.rmtree(committed / "linear_regression_conml_s1")
    legends.clear()
    aggregated(committed, tmp_path / "one_pair")
    assert legends[FIGURE] == ["ICL (1 seed)", "ConML-ICL (1 seed)", *BASELINES]
