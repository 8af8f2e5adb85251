"""Table 2's re-test with more inner steps builds the learner it needs from the run's config."""

from conml.build import resolve_device
from conml.tables.runs import read_run
from conml.tables.table2 import TEST_STEPS, TEST_STEPS_ANALYSIS, _meta_test


def test_each_step_count_is_the_trained_learner_retested_with_that_many_steps(run_tiny):
    _, run_dir = run_tiny(["eval.episodes=20", "eval.batch_size=10"])
    run = read_run(run_dir / "results.json")
    found = TEST_STEPS_ANALYSIS.compute(run)
    source, learner = run.load(resolve_device("cpu"))
    for steps in TEST_STEPS:
        learner.eval_inner_steps = steps  # the same learner, told to take more steps
        expected = _meta_test(run, source, learner, [source.shots])[f"mse@{source.shots}shot"].as_dict()
        assert found[f"steps={steps} mse@{source.shots}shot"] == expected
    assert len({found[f"steps={s} mse@{source.shots}shot"]["mean"] for s in TEST_STEPS}) == len(TEST_STEPS)
    assert not (run_dir / "analysis").exists()
