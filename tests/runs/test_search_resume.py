"""A search keeps its Optuna study on disk in its own folder, fixed by the command, so that the same command run
again continues the study; and a search is a multirun even when -m is left out."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from conml.checks.command_line import check_overrides
from conml.errors import ConfigError
from tests.conftest import CONFIGS, TINY
from tests.train_cli import train_cli

SEARCH = ["hparams_search=sine_optuna", "experiment=sine/conml", "dataset.shots=5"]
# The search's folder: <output_dir>/searches/<study name>/<experiment name>.
FOLDER = Path("searches", "sine_optuna", "sinusoid-maml-5shot-conml")


def search(outputs: Path, trials: int, *flags: str):
    return train_cli(
        *flags,
        *SEARCH,
        *TINY,
        "logger.mode=disabled",
        f"paths.output_dir={outputs}",
        f"hydra.sweeper.n_trials={trials}",
    )


def stored_trials(folder: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="sine_optuna", storage=f"sqlite:///{folder / 'optuna.db'}")
    return study.get_trials(deepcopy=False)


def test_the_same_command_again_continues_the_stored_study(tmp_path):
    outputs = tmp_path / "outputs"
    first = search(outputs, 3, "-m")  # a search stopped after three trials
    assert first.code == 0, first.out[-2000:] + first.err[-2000:]
    folder = outputs / FOLDER
    earlier = [(t.number, t.state, t.params, t.value) for t in stored_trials(folder)]
    assert [number for number, *_ in earlier] == [0, 1, 2]

    again = search(outputs, 1, "-m")
    assert again.code == 0, again.out[-2000:] + again.err[-2000:]

    trials = stored_trials(folder)
    assert len(trials) == 4, "the earlier trials count: the study was loaded, not started anew"
    assert [(t.number, t.state, t.params, t.value) for t in trials[:3]] == earlier, "the first three unchanged"
    assert trials[3].state == optuna.trial.TrialState.COMPLETE
    assert len(list(folder.glob("*/results.json"))) == 4, "every trial's run folder is in the search's folder"
    assert "Storage: sqlite:///" in again.out + again.err, "the log names where the study is kept"


def test_a_resumed_search_proposes_new_values_and_is_seeded(tmp_path):
    """A sampler seeded as the first command's would propose its values again, into a folder that holds a run."""
    runs = []
    for outputs in (tmp_path / "a", tmp_path / "b"):
        for _ in range(2):
            finished = search(outputs, 1)
            assert finished.code == 0, finished.out[-2000:] + finished.err[-2000:]
        runs.append([t.params for t in stored_trials(outputs / FOLDER)])
    (first, second), again = runs
    assert first != second, "the second command proposed new values"
    assert again == [first, second], "the same commands, the same trials"


def test_a_search_without_m_is_still_a_multirun(tmp_path):
    outputs = tmp_path / "outputs"
    finished = search(outputs, 1)  # no -m

    assert finished.code == 0, finished.out[-2000:] + finished.err[-2000:]
    folder = outputs / FOLDER
    (job,) = [path.parent for path in folder.glob("*/results.json")]
    assert job.name.startswith("0_sinusoid-maml-5shot-conml_conml.lam="), "a trial of the search, not a plain run"
    assert len(stored_trials(folder)) == 1
    assert f"Multirun {folder}: 1 job(s), 1 finished" in finished.out
    assert sorted(p.name for p in outputs.iterdir()) == ["searches"], "no plain run's folder"


def test_search_values_without_m_are_not_refused_when_the_config_is_a_multirun():
    check_overrides([*SEARCH, "seed=0,1"], CONFIGS)  # the search's config sets hydra.mode: MULTIRUN
    check_overrides([*SEARCH, "conml.lam=interval(0.1,1)"], CONFIGS)
    check_overrides(["hydra.mode=MULTIRUN", "seed=0,1"], CONFIGS)
    with pytest.raises(ConfigError, match="only a multirun runs"):
        check_overrides(["experiment=sine/conml", "seed=0,1"], CONFIGS)
