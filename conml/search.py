"""The sampler of a search that can be resumed (configs/hparams_search/).

A search keeps its Optuna study on disk and the same command continues it. The sweeper builds a new sampler on
every command, and a sampler seeded as the first command's was would propose that command's values again (every
trial of the random start-up does), each landing in a trial folder that already holds a run. So the seed is offset
by the number of trials the stored study holds: the first command is seeded as configured, and a search stopped
after the same trial continues the same way.
"""

from __future__ import annotations

from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig


def resumable_tpe(seed: int | None = None, **options: Any) -> optuna.samplers.TPESampler:
    """Optuna's TPESampler, its seed offset by the trials already in the sweeper's stored study (none: as configured)."""
    if seed is not None:
        seed += _stored_trials(HydraConfig.get().sweeper)
    return optuna.samplers.TPESampler(seed=seed, **options)


def _stored_trials(sweeper: Any) -> int:
    if sweeper.storage is None:
        return 0
    try:
        study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage)
    except KeyError:  # no such study yet: this command starts it
        return 0
    return len(study.get_trials(deepcopy=False))
