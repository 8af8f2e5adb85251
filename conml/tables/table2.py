"""ConML Table 2: sine-wave regression with MAML, plain vs ConML, plus the alignment / discrimination ablations.

Paper numbers: conml.md §3.1, Table 2 [source S1] (mean ± CI). The ablation rows (in-MAML,
out-MAML) and d_in / d_out exist in the paper only as Figure 2, so they have no paper value.
"""

from __future__ import annotations

from pathlib import Path

from conml.build import resolve_device
from conml.distances import Distance
from conml.evaluate import meta_test
from conml.figures import curve_figure, distance_figure, representation_figure
from conml.metrics import mean_ci
from conml.representation_analysis import analyze, distance_distributions, subset_models
from conml.tables.measures import Analysis, AnalysisValue, MetaTestMetric
from conml.tables.runs import Run
from conml.tables.spec import Cell, Column, Paper, RunKey, Table

PRESET = "table2_sinusoid_maml_{shots}shot_{variant}"
# Fig. 2c: test MSE as the number of test shots varies, models meta-trained with N = 10.
CURVE_SHOTS = (2, 5, 10, 20, 50)


def _representation(run: Run) -> dict:
    source, learner = run.load(resolve_device("auto"))
    return analyze(learner, source, Distance(run.setting("conml.phi")), run.setting("eval.episodes"))


def _mse_by_shots(run: Run) -> dict:
    source, learner = run.load(resolve_device("auto"))
    episodes, batch_size, queries = run.setting("eval.episodes"), run.setting("eval.batch_size"), run.setting("eval.queries")
    results = meta_test(learner, source, episodes, batch_size, next(learner.parameters()).device, list(CURVE_SHOTS), queries)
    return {key: value.as_dict() for key, value in results.items()}


REPRESENTATION = Analysis("representation", _representation)
MSE_BY_SHOTS = Analysis("mse_by_shots", _mse_by_shots)

MSE5, MSE10 = Column("MSE 5-shot ↓"), Column("MSE 10-shot ↓")
SILHOUETTE, DBI, CHI = Column("Silhouette ↑"), Column("DBI ↓"), Column("CHI ↑", digits=2)
D_IN, D_OUT = Column("mean d_in (test)", digits=2, style="e"), Column("mean d_out (test)", digits=2, style="e")

# (row, variant, paper values of MSE 5-shot, MSE 10-shot, Silhouette, DBI, CHI); None: not in the paper.
ROWS = (
    ("MAML", "plain", (Paper(0.6771, 0.0377), Paper(0.0678, 0.0022), Paper(0.1068, 0.0596), Paper(0.0678, 0.0021), Paper(31.55, 2.52))),
    ("ConML-MAML", "conml", (Paper(0.3935, 0.0100), Paper(0.0397, 0.0009), Paper(0.1945, 0.0621), Paper(0.0397, 0.0009), Paper(39.22, 2.61))),
    ("in-MAML (d_in only)", "alignment", None),
    ("out-MAML (d_out only)", "discrimination", None),
)
# The ablations, like the paper's, are meta-trained with 10 shots only.
FIVE_SHOT = ("plain", "conml")


def _cells() -> tuple[Cell, ...]:
    cells = []
    for row, variant, paper in ROWS:
        ten = RunKey(PRESET.format(shots=10, variant=variant))
        paper = paper or (None,) * 5
        if variant in FIVE_SHOT:
            cells.append(Cell(row, MSE5, MetaTestMetric(RunKey(PRESET.format(shots=5, variant=variant)), ("mse@5shot",)), paper[0]))
        cells.append(Cell(row, MSE10, MetaTestMetric(ten, ("mse@10shot",)), paper[1]))
        for column, key, value in ((SILHOUETTE, "silhouette", paper[2]), (DBI, "davies_bouldin", paper[3]), (CHI, "calinski_harabasz", paper[4])):
            cells.append(Cell(row, column, AnalysisValue(ten, REPRESENTATION, key), value))
        cells += [Cell(row, D_IN, AnalysisValue(ten, REPRESENTATION, "d_in")), Cell(row, D_OUT, AnalysisValue(ten, REPRESENTATION, "d_out"))]
    return tuple(cells)


def _figures(runs: list[Run], out_dir: Path) -> list[Path]:
    """Fig. 2 a/d (task models of the first seed in 2-D), 2 b/e (d_in, d_out), 2 c (MSE against test shots, over seeds)."""
    labels = {PRESET.format(shots=10, variant=variant): row for row, variant, _ in ROWS}
    by_label = {label: sorted((r for r in runs if r.name == name and r.run_dir is not None), key=lambda r: r.seed) for name, label in labels.items()}
    by_label = {label: found for label, found in by_label.items() if found}
    if not by_label:
        return []
    panels, distances, curves = {}, {}, {}
    for label, found in by_label.items():
        source, learner = found[0].load(resolve_device("auto"))
        models = subset_models(learner, source, 0, 10)
        panels[label] = (models.vectors.cpu().numpy(), models.labels)
        distances[label] = distance_distributions(learner, source, Distance(found[0].setting("conml.phi")), found[0].setting("eval.episodes"))
        per_seed = [run.analysis(MSE_BY_SHOTS.name, MSE_BY_SHOTS.compute) for run in found]
        stats = [mean_ci([result[f"mse@{k}shot"]["mean"] for result in per_seed]) for k in CURVE_SHOTS]
        curves[f"{label} ({len(found)} seeds)"] = (list(CURVE_SHOTS), [s.mean for s in stats], [s.ci95 for s in stats])
    return [
        representation_figure(panels, out_dir / "table2_representations.png"),
        distance_figure(distances, out_dir / "table2_distances.png"),
        curve_figure(curves, out_dir / "table2_mse_by_shots.png", "test shots (meta-trained with 10)", "test MSE", log_y=True),
    ]


TABLE = Table(
    name="table2",
    title="ConML Table 2: sine-wave regression, MAML vs ConML-MAML, and the alignment / discrimination ablations",
    source="Wu et al., Learning to Learn with Contrastive Meta-Objective, Table 2 (NeurIPS 2024 submission text; conml.md §3.1)",
    cells=_cells(),
    smoke={
        "trainer.steps": "2",
        "trainer.meta_batch_size": "4",
        "trainer.val_every": "2",
        "trainer.ckpt_every": "2",
        "trainer.val_episodes": "4",
        "eval.episodes": "8",
        "eval.batch_size": "8",
        "logger.mode": "disabled",
    },
    notes=(
        "Clustering scores (sklearn, Euclidean, task id as label) of the 10-shot runs: 10 test tasks x 10 disjoint subsets"
        " x N = 10 points, averaged over eval.episodes / 100 groups of test tasks (10 for 1000); d_in / d_out under the run's"
        " phi over its eval.episodes test tasks x 10 subsets, e* from the task's 100 points (conml/representation_analysis.py).",
        "The paper's DBI column repeats its 10-shot MSE column digit for digit (a copy error in the source), so its DBI values are not comparable.",
    ),
    figures=_figures,
)
