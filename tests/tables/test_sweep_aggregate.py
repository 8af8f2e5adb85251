"""`scripts/table.py aggregate sweep MULTIRUN_DIR [--out DIR]` summarises any multirun folder without a table
definition: its jobs grouped by the swept settings, mean ± 95% CI over seeds; a folder that is not a multirun,
or whose jobs have not finished, is refused in one paragraph and nothing is written."""

from __future__ import annotations

import json

import pytest
import yaml

from conml.metrics import mean_t_ci
from conml.tables.cli import main

# conml.lam x seed; the job of conml.lam=1.0, seed=2 has no results.json (it failed or is still running).
RESULTS = {("0.1", 0): 0.50, ("0.1", 1): 0.55, ("0.1", 2): 0.65, ("1.0", 0): 0.80, ("1.0", 1): 0.90, ("1.0", 2): None}


def multirun_folder(folder, results=RESULTS):
    """A multirun folder as Hydra and `python -m conml.train -m` leave it."""
    task = ["experiment=sine/conml", "conml.lam=0.1,1.0", "seed=0,1,2"]
    folder.mkdir(parents=True)
    (folder / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": task}}, "seed": 0}))
    for number, ((lam, seed), mse) in enumerate(results.items()):
        job = folder / f"{number}_sinusoid-maml-conml_on_conml.lam={lam},seed={seed}"
        (job / ".hydra").mkdir(parents=True)
        overrides = ["experiment=sine/conml", f"conml.lam={lam}", f"seed={seed}"]
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        if mse is not None:
            test = {"mse@10shot": {"mean": mse, "ci95": 0.05, "count": 1000}}
            (job / "results.json").write_text(
                json.dumps({"name": "sinusoid-maml-conml_on", "seed": seed, "test": test})
            )
    return folder


def one_paragraph(err: str) -> str:
    assert err.startswith("\nerror: ") and "Traceback" not in err
    text = err.strip()
    assert "\n" not in text
    return text


@pytest.mark.parametrize("out", [False, True], ids=["into the multirun folder", "--out"])
def test_any_multirun_is_grouped_by_its_swept_settings(tmp_path, capsys, out):
    sweep = multirun_folder(tmp_path / "multirun" / "2025-01-01_12-00-00")
    target = tmp_path / "summary" if out else sweep
    assert main(["aggregate", "sweep", str(sweep)] + (["--out", str(target)] if out else [])) == 0

    written = json.loads((target / "summary.json").read_text())
    assert written["swept"] == ["conml.lam", "seed"]
    lam_01, lam_1 = written["settings"]
    expected = mean_t_ci([0.50, 0.55, 0.65])
    assert lam_01["values"] == {"conml.lam": "0.1"} and lam_01["seeds_finished"] == ["0", "1", "2"]
    assert lam_01["test"]["mse@10shot"] == pytest.approx({"mean": expected.mean, "ci95": expected.ci95, "seeds": 3})
    assert lam_1["jobs"] == 3 and lam_1["test"]["mse@10shot"]["seeds"] == 2
    assert written["jobs"][5]["test"] is None and "no results.json" in written["jobs"][5]["error"]
    markdown = (target / "summary.md").read_text()
    assert f"| 0.1 | 3/3 | {expected.mean:.4g} ± {expected.ci95:.2g} |" in markdown
    assert "| 1.0 | 2/3 | 0.85 ± " in markdown
    printed = capsys.readouterr().out
    assert "Per setting, mean ± 95% CI over seeds:" in printed and f"Written: {target / 'summary.md'}" in printed

    assert main(["aggregate", "sweep", str(sweep)] + (["--out", str(target)] if out else [])) == 0
    assert sorted(p.name for p in target.glob("summary*")) == ["summary.json", "summary.md"], "a rerun: unchanged"


def test_a_folder_that_is_not_a_multirun_is_refused_naming_the_multiruns_inside(tmp_path, capsys):
    table_run = tmp_path / "tables" / "table2" / "2025-01-01_12-00-00"
    multirun_folder(table_run / "grid1")
    multirun_folder(table_run / "grid2")
    assert main(["aggregate", "sweep", str(table_run)]) == 2
    error = one_paragraph(capsys.readouterr().err)
    assert f"{table_run} is not a multirun folder" in error and "grid1, grid2" in error
    assert not list(tmp_path.rglob("summary*"))


def test_a_multirun_without_finished_jobs_is_refused(tmp_path, capsys):
    sweep = multirun_folder(tmp_path / "sweep", {key: None for key in RESULTS})
    assert main(["aggregate", "sweep", str(sweep)]) == 2
    error = one_paragraph(capsys.readouterr().err)
    assert "6 job folder(s) and none has finished" in error and "results.json" in error
    assert not list(sweep.glob("summary*"))


@pytest.mark.parametrize("options", [["--seeds", "0,1"], ["--docs"], ["--wandb", "me/conml"]])
def test_table_options_are_refused_for_a_sweep(tmp_path, capsys, options):
    sweep = multirun_folder(tmp_path / "sweep")
    assert main(["aggregate", "sweep", str(sweep), *options]) == 2
    error = one_paragraph(capsys.readouterr().err)
    assert options[0] in error and "belong to the paper tables" in error
    assert not list(sweep.glob("summary*"))
