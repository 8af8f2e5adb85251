"""ConML Table 5: in-context learning of function classes, ICL vs ConML-ICL, compared by their error curves.

Paper numbers: conml/tables/paper/table5.yaml (conml.md §3.5, Table 5 [source S1], mean ± CI).
Per seed, the error-vs-examples curves of the plain and the ConML run of one function class (seed s
against seed s, on the same test prompts) give the relative minimum error and the shot spare
(conml/icl_curves.py).
Both curves and Garg et al.'s baselines on the same prompts are written per run by
`scripts/table.py export` (analysis/*.json beside the exported results.json), so runs exported
without their checkpoints still rebuild the table and its figures.
The cells are the sweep of configs/table/table5.yaml (function class x ConML off/on at toy scale:
the paper's prompt lengths, d = 5, as in the authors' released ctoy.yaml); table5_paper.yaml sweeps
the same at Garg et al.'s scale.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from hydra.utils import instantiate

from conml.build import resolve_device
from conml.cell_name import VARIANTS, leaf
from conml.figures import curve_figure
from conml.icl_curves import Curve, baseline_curves, learner_curve, relative_minimum_error, shot_spare
from conml.metrics import mean_t_ci
from conml.tables.measures import Analysis
from conml.tables.runs import Run
from conml.tables.spec import Cell, Column, Lookup, Paper, RunKey, Table
from conml.tables.table_sweep import table_axes, table_cells, table_sweep

# function class: (row, Rel. Min. Error (mean, ci), Shot Spare (mean, ci)).
# By function class: the paper's row label, relative minimum error and shot spare (mean, CI).
PAPER = yaml.safe_load((Path(__file__).parent / "paper" / "table5.yaml").read_text())
# The function classes in words, for the figures' titles.
CLASS_NAMES = {
    "linear_regression": "linear regression",
    "sparse_linear_regression": "sparse linear regression",
    "decision_tree": "depth-4 decision trees",
    "relu_net": "two-layer ReLU networks",
}


def _curve(run: Run) -> dict:
    source, learner = run.load(resolve_device("auto"))
    device = next(learner.parameters()).device
    found = learner_curve(
        run.name, learner, source, run.setting("eval.episodes"), run.setting("eval.batch_size"), device
    )
    return {"shots": found.shots, "mean": found.mean, "ci95": found.ci95}


def _baselines(run: Run) -> dict:
    """Garg et al.'s baselines on the run's own test prompts (those its curve is measured on); no checkpoint needed."""
    source = instantiate(run.config["dataset"])
    found = baseline_curves(source, run.setting("eval.episodes"), run.setting("eval.batch_size"))
    return {"curves": [asdict(c) for c in found]}


ICL_CURVE = Analysis("icl_curve", _curve)
ICL_BASELINES = Analysis("icl_baselines", _baselines)


def _load_curve(run: Run) -> Curve | None:
    found = run.analysis(ICL_CURVE.name, ICL_CURVE.compute)
    return None if found is None else Curve(run.name, found["shots"], found["mean"], found["ci95"])


def _load_baselines(run: Run) -> list[Curve]:
    found = run.analysis(ICL_BASELINES.name, ICL_BASELINES.compute)
    return [] if found is None else [Curve(**c) for c in found["curves"]]


@dataclass(frozen=True)
class CurveComparison:
    """Relative minimum error or shot spare of the ConML run's curve against the plain run's (NaN: never reached)."""

    plain: RunKey
    conml: RunKey
    statistic: str

    def runs(self) -> tuple[RunKey, ...]:
        return (self.plain, self.conml)

    def __call__(self, find: Lookup) -> float | None:
        base, better = find(self.plain), find(self.conml)
        if base is None or better is None:
            return None
        base_curve, better_curve = _load_curve(base), _load_curve(better)
        if base_curve is None or better_curve is None:
            return None
        if self.statistic == "relative_minimum_error":
            return relative_minimum_error(base_curve, better_curve)
        spare = shot_spare(base_curve, better_curve)
        return math.nan if spare is None else float(spare)


def _over_seeds(curves: list[Curve]) -> tuple[list[int], list[float], list[float]]:
    """Shots, mean and 95% CI half-width (Student t) over the curves of several seeds."""
    stats = [mean_t_ci([c.mean[k] for c in curves]) for k in range(len(curves[0].shots))]
    return curves[0].shots, [s.mean for s in stats], [s.ci95 for s in stats]


def _baselines_over_seeds(runs: list[Run]) -> dict[str, tuple[list[int], list[float]]]:
    """Each baseline's mean curve over the seeds of `runs`: the test prompts depend on the seed, not on ConML,
    so the runs of one seed agree (each run still caches its own, to be exported with it)."""
    per_seed = {run.seed: _load_baselines(run) for run in runs}
    by_name: dict[str, list[Curve]] = {}
    for curves in per_seed.values():
        for c in curves:
            by_name.setdefault(c.name, []).append(c)
    return {name: _over_seeds(curves)[:2] for name, curves in by_name.items()}


def _seeds(count: int) -> str:
    return f"{count} seed" + ("" if count == 1 else "s")


def _figures_for(names: dict[tuple[str, str], str]):
    """Fig. 3 from the runs named `names[function class, plain|conml]`."""

    def figures(runs: list[Run], out_dir: Path) -> list[Path]:
        """Error against in-context examples per function class: ICL and ConML-ICL as mean ± 95% CI over
        seeds, Garg et al.'s baselines on the same test prompts as mean over seeds (ConML Fig. 3)."""
        paths = []
        for function, printed in PAPER.items():
            row = printed["row"]
            of_function = [r for r in runs if r.name in (names[function, v] for v in ("plain", "conml"))]
            # ConML-ICL seed s is compared with ICL seed s: once a seed has both runs, a run whose pair is
            # not there yet is left out, so that both curves average the same seeds.
            seeds_of = {v: {r.seed for r in of_function if r.name == names[function, v]} for v in ("plain", "conml")}
            paired = seeds_of["plain"] & seeds_of["conml"]
            if paired:
                of_function = [r for r in of_function if r.seed in paired]
            curves = {}
            for variant, label in (("plain", "ICL"), ("conml", "ConML-ICL")):
                loaded = [_load_curve(r) for r in of_function if r.name == names[function, variant]]
                found = [c for c in loaded if c is not None]
                if found:
                    curves[f"{label} ({_seeds(len(found))})"] = _over_seeds(found)
            if not curves:
                continue
            seeds = _seeds(len({r.seed for r in of_function}))
            prompts = ", ".join(str(n) for n in sorted({r.setting("eval.episodes") for r in of_function}))
            paths.append(
                curve_figure(
                    curves,
                    out_dir / f"table5_{function}_curves.png",
                    "in-context examples k",
                    "squared error at point k+1",
                    title=f"Fig. 3, {row}: {CLASS_NAMES[function]}\n"
                    f"points: mean over seeds of the error on {prompts} test prompts",
                    band="shaded: 95% CI over seeds (Student t)\n"
                    f"dashed: Garg et al.'s baselines on\nthe same prompts, mean over {seeds}",
                    references=_baselines_over_seeds(of_function),
                )
            )
        return paths

    return figures


def icl_table(name: str) -> Table:
    """The table swept by configs/table/<name>.yaml: a row per function class (in the paper's order), its
    relative minimum error and shot spare."""
    axes = table_axes(name)
    scale = leaf(axes["experiment"][0])
    names = {(c.value("dataset"), VARIANTS[c.value("conml")]): c.run_name for c in table_cells(name)}
    cells = []
    for function, printed in PAPER.items():
        row, error, spare = printed["row"], printed["relative_minimum_error"], printed["shot_spare"]
        plain, conml = RunKey(names[function, "plain"]), RunKey(names[function, "conml"])
        cells.append(
            Cell(
                row,
                Column("Rel. Min. Error ↓", digits=2),
                CurveComparison(plain, conml, "relative_minimum_error"),
                Paper(*error),
            )
        )
        cells.append(
            Cell(row, Column("Shot Spare ↓", digits=2), CurveComparison(plain, conml, "shot_spare"), Paper(*spare))
        )
    return Table(
        name=name,
        title=f"ConML Table 5: in-context learning of function classes, ICL vs ConML-ICL ({scale} scale)",
        source="Wu, Wang, Bian, Yao. Learning to Learn with Contrastive Meta-Objective. NeurIPS 2025, arXiv:2410.05975 (Table 5 of its NeurIPS 2024 submission text)",
        cells=tuple(cells),
        seeds=tuple(int(s) for s in axes["seed"]),
        sweeps=(table_sweep(name),),
        # On top of debug=smoke: a one-layer transformer, meta-batches of 4 prompts and 4 test prompts.
        smoke={
            "++model.width": "16",
            "++model.depth": "1",
            "++model.heads": "2",
            "trainer.meta_batch_size": "4",
            "eval.episodes": "4",
            "eval.batch_size": "4",
        },
        notes=(
            "Curves: squared error at point k+1 from the first k points on the run's eval.episodes test prompts; "
            "ConML-ICL seed s is compared with ICL seed s. A shot spare is undefined for a seed whose ConML curve never reaches the ICL minimum.",
            "Figures: per function class, ICL and ConML-ICL curves (mean ± 95% CI over seeds) beside Garg et al.'s least-squares, "
            "averaging and 3-nearest-neighbour baselines on the same test prompts (mean over seeds).",
        ),
        figures=_figures_for(names),
    )


TABLE5 = icl_table("table5")
TABLE5_PAPER = icl_table("table5_paper")
