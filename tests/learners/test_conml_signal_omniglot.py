"""The gradient-share survey on real Omniglot episodes: its cases are the Omniglot table's cells, it
measures them from the prepared data, keeps the rows it does not measure, and refuses without the data."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from conml.data.images.cache import SPLITS, CacheWriter
from conml.errors import DataError
from conml.signal_survey import OMNIGLOT, SYNTHETIC_IMAGES, compose_case, measure, paper_cases, require_data
from conml.tables.table_sweep import table_cells
from scripts import conml_signal


@pytest.fixture
def tiny_omniglot(tmp_path, monkeypatch):
    """A prepared Omniglot cache of 16 characters x 20 random drawings per split under CONML_DATA (64 classes
    with rotations: enough for ProtoNet's 60-way training episodes and Reptile's 10 drawings per class)."""
    rng = np.random.default_rng(0)
    writer = CacheWriter(tmp_path / "data" / "omniglot" / "vinyals", "omniglot", "official-vinyals", 28, channels=1)
    for split in SPLITS:
        names = [f"Alphabet/character{c:02d}" for c in range(1, 17)]
        drawings = ((rng.random((28, 28, 1)) < 0.1).astype(np.uint8) * 255 for _ in range(16 * 20))
        writer.write_split(split, names, [20] * 16, drawings)
    writer.finish()
    monkeypatch.setenv("CONML_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def extractor(tiny_omniglot):
    """Where Simple CNAPs' Omniglot cells load their pretrained ResNet-18 from; a placeholder file (the survey's
    check is that it exists; the tests that measure Simple CNAPs' case are not these)."""
    path = tiny_omniglot / "pretrained" / "omniglot_resnet18_film.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    return path


def test_the_real_data_cases_are_the_omniglot_tables_5way_1shot_conml_cells_with_every_psi():
    cases = paper_cases(image_tasks=8)
    real = [case for case in cases if case.data == OMNIGLOT]
    cells = {cell.run_name: cell for cell in table_cells("omniglot")}
    learners = ("maml", "fomaml", "reptile", "protonet", "matchingnet", "simple_cnaps")
    assert sorted({case.preset for case in real}) == sorted(f"omniglot-{name}-5way-1shot-conml" for name in learners)
    assert all(case.preset in cells for case in real)
    for name in learners:  # the psi options of the synthetic-episode rows, on the cell's own meta-batch
        synthetic = [c.psi for c in cases if c.learner == f"{name} 1-shot" and c.data == SYNTHETIC_IMAGES]
        assert [c.psi for c in real if c.learner == f"{name} 5-way 1-shot"] == synthetic and len(synthetic) == 3
    assert not any("meta_batch_size" in override for case in real for override in case.overrides)
    assert len({(case.learner, case.psi) for case in cases}) == len(cases)  # the survey's resume key
    maml = next(case for case in real if case.preset == "omniglot-maml-5way-1shot-conml")
    assert compose_case(maml, seed=0).trainer.meta_batch_size == 32


@pytest.mark.parametrize("data", ["omniglot", "all"])
def test_without_the_prepared_data_the_real_data_cases_are_refused_in_one_sentence(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONML_DATA", str(tmp_path / "data"))
    measured = []
    monkeypatch.setattr(conml_signal, "measure", lambda case, seed: measured.append(case))
    out = tmp_path / "signal.json"
    monkeypatch.setattr(sys, "argv", ["conml_signal.py", "--out", str(out), "--seeds", "0", "--data", data])
    with pytest.raises(SystemExit) as refused:
        conml_signal.main()
    assert refused.value.code == 2 and not measured and not out.exists()
    error = capsys.readouterr().err
    assert str(tmp_path / "data" / "omniglot" / "vinyals") in error and "`make data-omniglot`" in error
    assert "Traceback" not in error and error.strip().count(". ") == 0


def fake_measure(case, seed):
    row = {"learner": case.learner, "psi": case.psi, "data": case.data, "command": case.preset, "tasks": 2}
    return row | {"share": 0.5 + seed, "d_in": 0.1, "d_out": 0.2}


def test_a_real_data_survey_measures_only_omniglot_rows_and_keeps_the_others(extractor, tmp_path, monkeypatch):
    kept = {"learner": "maml 1-shot", "psi": "update", "command": "x", "tasks": 8, "d_in": 0.5, "d_out": 0.9}
    kept |= {"share": 1e-3, "share_by_seed": [1e-3], "seeds": [7]}
    out = tmp_path / "signal.json"
    out.write_text(json.dumps({"rows": [kept]}))  # an earlier survey's row, from before the data column
    monkeypatch.setattr(conml_signal, "measure", fake_measure)
    rows = conml_signal.survey([0, 1], image_tasks=8, out=out, data="omniglot")

    assert rows == json.loads(out.read_text())["rows"]
    assert rows[0] == {**kept, "data": SYNTHETIC_IMAGES}  # not re-measured although its seeds differ
    assert [row["data"] for row in rows[1:]] == [OMNIGLOT] * 18 and rows[1]["learner"] == "maml 5-way 1-shot"
    assert all(row["share"] == 1.0 and row["share_by_seed"] == [0.5, 1.5] for row in rows[1:])
    table = conml_signal.markdown(rows)
    assert "| maml 1-shot | update | synthetic 84 px |" in table
    assert "| maml 5-way 1-shot | weights (paper) | Omniglot (real) |" in table


def test_without_the_pretrained_extractor_the_simple_cnaps_case_is_refused_in_one_paragraph(tiny_omniglot, tmp_path):
    (case,) = [c for c in paper_cases(8) if c.learner == "simple_cnaps 5-way 1-shot" and c.psi == "FiLM (paper)"]
    with pytest.raises(DataError) as refused:
        require_data([case])
    message = str(refused.value)
    assert str(tiny_omniglot / "pretrained" / "omniglot_resnet18_film.pt") in message
    assert "export_extractor" in message and "--data synthetic" in message


@pytest.mark.parametrize("learner", ["maml", "protonet"])
def test_the_share_is_measured_on_episodes_of_the_prepared_omniglot_data(learner, tiny_omniglot):
    case = next(c for c in paper_cases(8) if c.preset == f"omniglot-{learner}-5way-1shot-conml")
    row = measure(case, seed=0)
    assert row["data"] == OMNIGLOT and row["tasks"] == {"maml": 32, "protonet": 2}[learner]
    assert math.isfinite(row["share"]) and row["share"] > 0 and row["d_in"] > 0
