"""`scripts/conml_signal.py --overrides ...` measures ConML's gradient share of any config the Hydra overrides compose,
as the survey measures its presets, and refuses overrides it cannot measure in one paragraph."""

from __future__ import annotations

import sys

import pytest

from conml.signal_survey import measure, paper_cases
from scripts import conml_signal


def run_script(monkeypatch, capsys, *arguments: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["conml_signal.py", *arguments])
    try:
        conml_signal.main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def test_overrides_measure_what_the_survey_measures_for_the_same_config(monkeypatch, capsys):
    """The sine table cell with psi = update, spelled as overrides, gives the survey's share bit for bit."""
    (case,) = [c for c in paper_cases(image_tasks=2) if c.learner.startswith("sine") and c.psi == "update"]
    overrides = ["dataset=sinusoid", "learner=maml", "dataset.shots=5", "experiment=sine/conml", *case.overrides]
    code, out, _ = run_script(monkeypatch, capsys, "--seeds", "0", "--overrides", *overrides)
    assert code == 0
    header, rule, row = out.strip().splitlines()
    assert header == conml_signal.markdown([]).splitlines()[0]
    share = measure(case, seed=0)["share"]
    assert row.startswith(f"| MAML | update | SineWaves | {share:.1e} |") and share > 1e-2
    assert row.endswith(f"| `{' '.join(overrides)}` |")


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["learner.representation=update"], "name no experiment preset"),
        (["experiment=sine/conml", "seed=3"], "Pass --seeds instead"),
        (["experiment=sine/conml", "conml=off"], "ConML off"),
        (["experiment=sine/nope"], "do not compose a config: In 'train': Could not find 'experiment/sine/nope'"),
        (["experiment=sine/conml", "learner=protonet"], "builds its task models from class labels"),
        (["experiment=sine/conml", "trainer.meta_batch_size=1"], "needs at least 2 tasks per meta-batch"),
    ],
)
def test_overrides_that_cannot_be_measured_are_refused_in_one_paragraph(monkeypatch, capsys, overrides, expected):
    measured = []
    monkeypatch.setattr(conml_signal, "measure", lambda case, seed: measured.append(case))
    code, out, err = run_script(monkeypatch, capsys, "--overrides", *overrides)
    assert code == 2 and not measured and not out
    assert expected in err and "Traceback" not in err and "\n" not in err.strip()


def test_synthetic_images_need_overrides(monkeypatch, capsys):
    code, _, err = run_script(monkeypatch, capsys, "--table", "x.json", "--synthetic-images")
    assert code == 2 and "--synthetic-images applies only with --overrides" in err
