def test_default_config_runs(run_tiny):
    summary, run_dir = run_tiny()
    assert (run_dir / "results.json").exists()
    assert summary["steps"] == 4
