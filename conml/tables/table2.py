"""ConML Table 2: sine-wave regression with MAML, plain vs ConML, plus the alignment / discrimination ablations.

The cells are the sweeps of configs/table/table2.yaml (shots x row, each row a protocol file in
configs/experiment/sine/) and table2_ablation.yaml (the ablations at 10 shots), the lambda sweep that
of table2_lambda.yaml. Paper numbers:
conml/tables/paper/table2.yaml (conml.md §3.1, Table 2 [source S1], mean ± CI). The ablation rows
(in-MAML, out-MAML) and d_in / d_out exist in the paper only as Figure 2 (10 shots), so they have no
paper value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from conml.build import resolve_device
from conml.distances import Distance
from conml.evaluate import meta_test
from conml.figures import curve_figure, distance_figure, representation_figure
from conml.metrics import mean_ci
from conml.representation_analysis import analyze, distance_distributions, embed_2d, subset_models
from conml.tables.measures import Analysis, AnalysisValue, Difference, GradShare, MetaTestMetric
from conml.tables.runs import Run
from conml.tables.spec import Cell, Column, Paper, RunKey, Table
from conml.tables.table_sweep import table_axes, table_cells, table_sweep

# Fig. 2c: test MSE as the number of test shots varies, models meta-trained with N = 10.
CURVE_SHOTS = (2, 5, 10, 20, 50)
# Fig. 2f: meta-trained on amplitudes U[0.1, 5], tested on U[0.1 + delta, 5 + delta].
AMPLITUDE_SHIFTS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
# Test-time inner steps tried in search of the paper's 10-shot MAML number (meta-training uses one).
TEST_STEPS = (1, 5, 10)
MORE_TEST_SHOTS = (20, 50)
# Fig. 2b/2e: one set of log-spaced bins (20 per decade) for every run's d_in / d_out histogram, so that histograms
# cached run by run are drawn on one axis.
DISTANCE_BINS = np.geomspace(1e-10, 1e2, 12 * 20 + 1)


def _representation(run: Run) -> dict:
    source, learner = run.load(resolve_device("auto"))
    return analyze(learner, source, Distance(run.setting("conml.phi")), run.setting("eval.episodes"))


def _meta_test(run: Run, source, learner, shots: list[int]) -> dict:
    episodes, batch_size, queries = (
        run.setting("eval.episodes"),
        run.setting("eval.batch_size"),
        run.setting("eval.queries"),
    )
    return meta_test(learner, source, episodes, batch_size, next(learner.parameters()).device, shots, queries)


def _mse_by_shots(run: Run) -> dict:
    source, learner = run.load(resolve_device("auto"))
    return {key: value.as_dict() for key, value in _meta_test(run, source, learner, list(CURVE_SHOTS)).items()}


def _shifted_amplitude(run: Run) -> dict:
    source, learner = run.load(resolve_device("auto"))
    low, high = source.amplitude
    shots = source.shots
    return {
        f"delta={delta:g}": _meta_test(run, source.with_amplitude((low + delta, high + delta)), learner, [shots])[
            f"mse@{shots}shot"
        ].as_dict()
        for delta in AMPLITUDE_SHIFTS
    }


def _test_steps(run: Run) -> dict:
    """MSE with more inner steps at meta-test (meta-training used one), at the run's shots and, with the most steps, more shots."""
    results = {}
    for steps in TEST_STEPS:
        source, learner = run.load(resolve_device("auto"), settings={"learner.eval_inner_steps": steps})
        shots = [source.shots, *MORE_TEST_SHOTS] if steps == TEST_STEPS[-1] else [source.shots]
        for key, value in _meta_test(run, source, learner, shots).items():
            results[f"steps={steps} {key}"] = value.as_dict()
    return results


def _figure_2(run: Run) -> dict:
    """What Fig. 2 a/b/d/e draw of a run, small enough to commit with it: the models of 10 test tasks x 10 subsets
    in 2-D (PCA and t-SNE), and histograms of d_in and d_out over its test tasks on DISTANCE_BINS (with the
    counts outside them, which the figure does not show)."""
    source, learner = run.load(resolve_device("auto"))
    models = subset_models(learner, source, 0, 10)
    vectors = models.vectors.cpu().numpy()
    distances = distance_distributions(
        learner, source, Distance(run.setting("conml.phi")), run.setting("eval.episodes")
    )
    histograms = {}
    for key, values in zip(("d_in", "d_out"), distances):
        histograms[key] = np.histogram(values, DISTANCE_BINS)[0].tolist()
        histograms[f"{key} outside the bins"] = int(np.sum((values < DISTANCE_BINS[0]) | (values > DISTANCE_BINS[-1])))
    return {
        "tasks": models.labels.tolist(),
        "pca": embed_2d(vectors, "pca").tolist(),
        "tsne": embed_2d(vectors, "tsne").tolist(),
        "bins": DISTANCE_BINS.tolist(),
        **histograms,
    }


REPRESENTATION = Analysis("representation", _representation)
FIGURE_2 = Analysis("figure_2", _figure_2)
MSE_BY_SHOTS = Analysis("mse_by_shots", _mse_by_shots)
SHIFTED_AMPLITUDE = Analysis("shifted_amplitude", _shifted_amplitude)
TEST_STEPS_ANALYSIS = Analysis("test_inner_steps", _test_steps)

MSE5, MSE10 = Column("MSE 5-shot ↓"), Column("MSE 10-shot ↓")
# ConML minus MAML per seed (negative: ConML's error is lower), under the re-test with more inner steps.
RETEST_GAIN5, RETEST_GAIN10, RETEST_GAIN20 = (
    Column("MSE 5-shot, minus MAML's (paired) ↓", digits=3),
    Column("MSE 10-shot, minus MAML's (paired) ↓", digits=3),
    Column("MSE 20-shot (10-shot training), minus MAML's (paired) ↓", digits=4),
)
SILHOUETTE, DBI, CHI = Column("Silhouette ↑"), Column("DBI ↓"), Column("CHI ↑", digits=2)
D_IN, D_OUT = Column("mean d_in (test)", digits=2, style="e"), Column("mean d_out (test)", digits=2, style="e")
SHARE5, SHARE10 = (
    Column("ConML grad share, 5-shot", digits=1, style="e"),
    Column("ConML grad share, 10-shot", digits=1, style="e"),
)

# (row, its protocol in configs/experiment/sine/); the paper's numbers of a row, where it has them:
# conml/tables/paper/table2.yaml.
ROWS = (
    ("MAML", "plain"),
    ("ConML-MAML", "conml"),
    ("ConML-MAML, psi = theta' - theta", "conml_update"),
    ("ConML-MAML, psi centred on the meta-batch", "conml_centred"),
    ("in-MAML (d_in only, psi = theta' - theta)", "alignment"),
    ("out-MAML (d_out only, psi = theta' - theta)", "discrimination"),
)
# The rows of Table 2's main grid (configs/table/table2.yaml), re-tested with more inner steps at meta-test.
RETESTED = ("plain", "conml", "conml_update", "conml_centred")
PAPER = yaml.safe_load((Path(__file__).parent / "paper" / "table2.yaml").read_text())
GRIDS = ("table2", "table2_ablation")
# The runs of each (shots, row) cell of the sweeps.
RUNS = {(c.value("dataset.shots"), c.protocol): RunKey(c.run_name) for grid in GRIDS for c in table_cells(grid)}


def _cells() -> tuple[Cell, ...]:
    cells = []
    for row, variant in ROWS:
        five, ten = RUNS.get(("5", variant)), RUNS["10", variant]
        paper = [Paper(*value) for value in PAPER[variant]] if variant in PAPER else [None] * 5
        if five:
            cells.append(Cell(row, MSE5, MetaTestMetric(five, ("mse@5shot",)), paper[0]))
        cells.append(Cell(row, MSE10, MetaTestMetric(ten, ("mse@10shot",)), paper[1]))
        for column, key, value in (
            (SILHOUETTE, "silhouette", paper[2]),
            (DBI, "davies_bouldin", paper[3]),
            (CHI, "calinski_harabasz", paper[4]),
        ):
            cells.append(Cell(row, column, AnalysisValue(ten, REPRESENTATION, key), value))
        cells += [
            Cell(row, D_IN, AnalysisValue(ten, REPRESENTATION, "d_in")),
            Cell(row, D_OUT, AnalysisValue(ten, REPRESENTATION, "d_out")),
        ]
        if variant != "plain":
            if five:
                cells.append(Cell(row, SHARE5, GradShare(five)))
            cells.append(Cell(row, SHARE10, GradShare(ten)))
    cells += _retest_cells()
    return tuple(cells)


def _retest_cells() -> list[Cell]:
    """Every main row re-tested with more inner steps at meta-test (meta-training used one), at the run's shots and,
    with the most steps, at more test shots; and each ConML row minus MAML under the same re-test, per seed (a paired
    comparison under the test protocol that matches the paper's sine numbers, docs/results/sine.md)."""
    cells = []
    for row, variant in ((row, variant) for row, variant in ROWS if variant in RETESTED):
        label = f"{row}, {{}} inner steps at test"
        for steps in TEST_STEPS[1:]:
            for shots, column in ((5, MSE5), (10, MSE10)):
                key = f"steps={steps} mse@{shots}shot"
                cells.append(
                    Cell(
                        label.format(steps), column, AnalysisValue(RUNS[str(shots), variant], TEST_STEPS_ANALYSIS, key)
                    )
                )
        for shots in MORE_TEST_SHOTS:
            key = f"steps={TEST_STEPS[-1]} mse@{shots}shot"
            column = Column(f"MSE {shots}-shot (10-shot training) ↓")
            cells.append(
                Cell(label.format(TEST_STEPS[-1]), column, AnalysisValue(RUNS["10", variant], TEST_STEPS_ANALYSIS, key))
            )
    for row, variant in ((row, variant) for row, variant in ROWS if variant in RETESTED[1:]):
        # (training shots, test shots, column): the runs' own shots, and 20 test shots for the 10-shot runs.
        for trained, tested, column in ((5, 5, RETEST_GAIN5), (10, 10, RETEST_GAIN10), (10, 20, RETEST_GAIN20)):
            key = f"steps={TEST_STEPS[-1]} mse@{tested}shot"
            cells.append(
                Cell(
                    f"{row} − MAML, {TEST_STEPS[-1]} inner steps at test",
                    column,
                    Difference(
                        AnalysisValue(RUNS[str(trained), variant], TEST_STEPS_ANALYSIS, key),
                        AnalysisValue(RUNS[str(trained), "plain"], TEST_STEPS_ANALYSIS, key),
                    ),
                )
            )
    return cells


def _seed_curves(
    runs: list[Run], analysis: Analysis, keys: list[str], label: str
) -> tuple[str, tuple[list, list, list]]:
    """Mean and 95% CI over seeds of one analysis's values, as a curve."""
    per_seed = [run.analysis(analysis.name, analysis.compute) for run in runs]
    stats = [mean_ci([result[key]["mean"] for result in per_seed]) for key in keys]
    return f"{label} ({len(runs)} seeds)", ([s.mean for s in stats], [s.ci95 for s in stats])


def _figures(runs: list[Run], out_dir: Path) -> list[Path]:
    """Fig. 2 a/d (task models of the first seed in 2-D), 2 b/e (d_in, d_out), 2 c (MSE against test
    shots) and 2 f (MSE against an amplitude shift), the curves over seeds, all from the 10-shot runs."""
    labels = {RUNS["10", variant].preset: row for row, variant in ROWS}
    by_label = {
        label: sorted((r for r in runs if r.name == name and r.run_dir is not None), key=lambda r: r.seed)
        for name, label in labels.items()
    }
    by_label = {label: found for label, found in by_label.items() if found}
    if not by_label:
        return []
    drawn, by_shots, by_shift = {}, {}, {}
    for label, found in by_label.items():
        drawn[label] = found[0].analysis(FIGURE_2.name, FIGURE_2.compute)
        name, (mean, ci) = _seed_curves(found, MSE_BY_SHOTS, [f"mse@{k}shot" for k in CURVE_SHOTS], label)
        by_shots[name] = (list(CURVE_SHOTS), mean, ci)
        name, (mean, ci) = _seed_curves(found, SHIFTED_AMPLITUDE, [f"delta={d:g}" for d in AMPLITUDE_SHIFTS], label)
        by_shift[name] = (list(AMPLITUDE_SHIFTS), mean, ci)
    caption = "psi of 10 test tasks x 10 disjoint subsets of N = 10 points (first seed, 10-shot runs); colour = task"
    return [
        representation_figure(drawn, out_dir / "table2_representations.png", caption),
        distance_figure(drawn, out_dir / "table2_distances.png"),
        curve_figure(
            by_shots,
            out_dir / "table2_mse_by_shots.png",
            "test shots (meta-trained with 10)",
            "test MSE (1000 tasks)",
            log_y=True,
            title="Fig. 2c: test MSE against test shots",
        ),
        curve_figure(
            by_shift,
            out_dir / "table2_mse_by_amplitude_shift.png",
            "delta: test amplitudes U[0.1 + delta, 5 + delta]",
            "test MSE, 10-shot",
            log_y=True,
            title="Fig. 2f: meta-trained on U[0.1, 5], tested shifted",
        ),
    ]


def _lambda_cells() -> tuple[Cell, ...]:
    """MSE 5-shot and gradient share of ConML-MAML with psi = theta' - theta for each lambda (MAML's row is in Table 2)."""
    runs = [(dict(c.where)["conml.lam"], RunKey(c.run_name, c.where)) for c in table_cells("table2_lambda")]
    row = "ConML-MAML, psi = theta' - theta, lambda = {:g}"
    swept = [Cell(row.format(lam), MSE5, MetaTestMetric(key, ("mse@5shot",))) for lam, key in runs]
    shares = [Cell(row.format(lam), SHARE5, GradShare(key)) for lam, key in runs]
    return (*swept, *shares)


TABLE = Table(
    name="table2",
    title="ConML Table 2: sine-wave regression, MAML vs ConML-MAML with three psi, and the alignment / discrimination ablations",
    source="Wu, Wang, Bian, Yao. Learning to Learn with Contrastive Meta-Objective. NeurIPS 2025, arXiv:2410.05975 (Table 2 of its NeurIPS 2024 submission text)",
    cells=_cells(),
    seeds=tuple(int(s) for s in table_axes("table2")["seed"]),
    sweeps=tuple(table_sweep(grid) for grid in GRIDS),
    # On top of debug=smoke: sine-wave tasks are cheap, so meta-batches of 4 and 8 test tasks.
    smoke={
        "trainer.meta_batch_size": "4",
        "trainer.val_episodes": "4",
        "eval.episodes": "8",
        "eval.batch_size": "8",
    },
    notes=(
        "Clustering scores (sklearn, Euclidean, task id as label) of the 10-shot runs: 10 test tasks x 10 disjoint subsets"
        " x N = 10 points, averaged over eval.episodes / 100 groups of test tasks (10 for 1000); d_in / d_out under the run's"
        " phi over its eval.episodes test tasks x 10 subsets, e* from the task's 100 points (conml/representation_analysis.py).",
        "The paper's DBI column repeats its 10-shot MSE column digit for digit (a copy error in the source), so its DBI values are not comparable.",
    ),
    figures=_figures,
)

LAMBDA_TABLE = Table(
    name="table2_lambda",
    title="ConML Table 2, lambda sweep: 5-shot sine waves, ConML-MAML with psi = theta' - theta (the psi with the largest gradient share)",
    source=TABLE.source,
    cells=_lambda_cells(),
    seeds=tuple(int(s) for s in table_axes("table2_lambda")["seed"]),
    sweeps=(table_sweep("table2_lambda"),),
    smoke=TABLE.smoke,
    notes=("The paper states no lambda sweep; its Table 2 uses lambda = 0.1 with psi = the adapted weights.",),
)
