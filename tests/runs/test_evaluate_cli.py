"""`python -m conml.evaluate` re-tests a run's checkpoint and agrees with the run's own results."""

from __future__ import annotations

import json

from conml.evaluate import main


def test_evaluate_reproduces_the_run_results(run_tiny, capsys):
    summary, run_dir = run_tiny()
    main([str(run_dir), "--device", "cpu"])
    written = json.loads(next(run_dir.glob("eval_best_*episodes.json")).read_text())
    assert written == summary["test"]
    main([str(run_dir), "--device", "cpu", "--shots", "3", "7", "--episodes", "5"])
    assert set(json.loads((run_dir / "eval_best_5episodes.json").read_text())) == {"mse@3shot", "mse@7shot"}
