"""What the launcher and the user's environment say about this process (torchrun, SLURM, tqdm's switch), read from
the environment once, at the entry point, and passed down: no module below `conml.train` reads an environment
variable to change what it does."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Launch:
    # torchrun's WORLD_SIZE: the processes that share each meta-batch.
    world_size: int = 1
    # torchrun's LOCAL_RANK: this process's GPU on its node.
    local_rank: int = 0
    # SLURM_RESTART_COUNT > 0: SLURM requeued this job, which then continues from its own checkpoint.
    requeued: bool = False
    # The SLURM job (array jobs: <job>_<task>) to requeue after a preemption; None outside SLURM.
    slurm_job: str | None = None
    # TQDM_DISABLE (tqdm's own switch) unset: progress bars on a terminal, plain lines in a file.
    progress: bool = True

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Launch:
        array_job = environ.get("SLURM_ARRAY_JOB_ID")
        return cls(
            world_size=int(environ.get("WORLD_SIZE", "1")),
            local_rank=int(environ.get("LOCAL_RANK", "0")),
            requeued=int(environ.get("SLURM_RESTART_COUNT", "0")) > 0,
            slurm_job=f"{array_job}_{environ.get('SLURM_ARRAY_TASK_ID')}" if array_job else environ.get("SLURM_JOB_ID"),
            progress=not environ.get("TQDM_DISABLE"),
        )
