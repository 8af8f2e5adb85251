"""Preemption and interruption: SIGTERM / SIGUSR1 (what SLURM sends before it stops a job) and
SIGINT (Ctrl-C) become a request to checkpoint at the next step boundary and stop, instead of losing
the steps since the last checkpoint; a preempted job is also requeued. A second Ctrl-C stops at once.

A process started with SIGINT ignored (a background job of a non-interactive shell, some CI
runners) keeps ignoring it, as Python itself does: whoever started it chose that Ctrl-C at the
terminal should not reach it. The guard then leaves SIGINT alone and says so once per process;
SIGTERM still stops the run with a checkpoint.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from conml.errors import UserError

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class Preempted(UserError):
    """The run stopped on a preemption signal or Ctrl-C after writing its checkpoint; exits with 128 + signal."""

    def __init__(self, signum: int, step: int, steps: int, checkpoint: Path, action: str):
        super().__init__(
            f"Stopped by {signal.Signals(signum).name} at step {step} of {steps}: checkpoint {checkpoint} written{'; ' + action if action else ''}."
        )
        self.exit_code = 128 + signum


class PreemptionGuard:
    """Records preemption signals while active; the trainer polls `requested` between steps."""

    def __init__(self, slurm_job: str | None = None):
        """`slurm_job`: the SLURM job to requeue after a preemption (`Launch.slurm_job`); None outside SLURM."""
        self.slurm_job = slurm_job
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
            for signum in SIGNALS:
                if signum == signal.SIGINT and signal.getsignal(signum) is signal.SIG_IGN:
                    _say_sigint_is_ignored()
                    continue
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            if self.requested == signal.SIGINT:
                raise KeyboardInterrupt
            # os.write: printing from a signal handler can collide with the interrupted print
            os.write(
                2,
                b"\nCtrl-C: stopping after this step, with a checkpoint (press Ctrl-C again to stop at once, without one).\n",
            )
        self.requested = signum

    def hand_over(self) -> str:
        """After the checkpoint: let a launcher's own handler (e.g. submitit's) requeue the job, or
        requeue it with scontrol under SLURM. Returns what was done, for the user."""
        signum = self.requested
        previous = self._previous.get(signum)
        self.__exit__()
        if signum == signal.SIGINT:  # the user stopped the run: nothing to requeue
            return ""
        if callable(previous):
            previous(signum, None)
            return "handed the signal to the launcher"
        job = self.slurm_job
        if not job:
            return "not running under SLURM, so nothing was requeued"
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        if result.returncode != 0:
            return f"`scontrol requeue {job}` failed ({result.stderr.strip()}); requeue it by hand"
        return f"requeued SLURM job {job}"


@functools.cache  # once per process: a multirun's jobs share it
def _say_sigint_is_ignored() -> None:
    print(
        "Ctrl-C (SIGINT) is ignored: it was when this process started (as in a background job of a "
        "non-interactive shell, or under some CI runners), and the run leaves it so. Stop the run with "
        "SIGTERM (kill <pid>) instead: it writes checkpoints/last.pt first.",
        file=sys.stderr,
    )
