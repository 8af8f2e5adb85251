"""scripts/val_curves.py: validation curves read back from a run's metrics.jsonl."""

from __future__ import annotations

import json

import pytest

from scripts.val_curves import main


def test_curves_are_the_validation_entries_by_step(tmp_path, capsys):
    run = tmp_path / "run_a"
    run.mkdir()
    lines = [
        {"step": 10, "train/loss": 1.0},
        {"step": 250, "val/accuracy": 80.0, "val/accuracy_ci95": 2.0},
        {"step": 500, "val/accuracy": 90.5, "val/accuracy_ci95": 1.0},
    ]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    main([str(run), "--json", str(tmp_path / "curves.json"), "--every", "500"])
    printed = capsys.readouterr().out
    assert "| run_a | 90.5 |" in printed and "80.0" not in printed
    assert json.loads((tmp_path / "curves.json").read_text()) == {
        "run_a": {"metric": "val/accuracy", "steps": [250, 500], "values": [80.0, 90.5]}
    }


def test_a_folder_without_metrics_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="holds no metrics.jsonl"):
        main([str(tmp_path)])
