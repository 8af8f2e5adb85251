"""Fault injection: preemption signals, kill -9 (also mid-checkpoint), a full disk, a diverging loss.

In every case nothing finished is lost, no checkpoint is half-written, and a resumed run ends with
exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conml.checkpoint import OutputError, load_checkpoint
from conml.launch import Launch
from conml.objective import ConMLObjective
from conml.train import run
from conml.trainer import TrainingDiverged
from tests.conftest import TINY, compose_config
from tests.train_cli import train_cli

ROOT = Path(__file__).resolve().parents[2]
# Long enough to be interrupted mid-run, short enough for the default suite.
LONG = [
    *TINY,
    "trainer.steps=200",
    "trainer.val_every=100",
    "trainer.ckpt_every=100",
    "trainer.log_every=2",
    "conml.subset=random",
]


def command_line(overrides: list[str], run_dir: Path, prelude: str = "") -> list[str]:
    """The training command, optionally after a snippet that patches the library for the fault."""
    script = f"import sys; {prelude}\nfrom conml.train import main\nsys.argv = ['conml.train', *{overrides!r}, 'hydra.run.dir={run_dir}']\nmain()"
    return [sys.executable, "-c", script]


def child_env(**extra) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


def wait_for_step(run_dir: Path, step: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    metrics = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"training ended before step {step}: {process.stderr.read()}")
        if metrics.exists() and any(
            json.loads(line)["step"] >= step for line in metrics.read_text().splitlines() if line
        ):
            return
        time.sleep(0.02)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def test_preemption_signal_checkpoints_requeues_and_resumes_exactly(tmp_path, monkeypatch):
    straight = run(compose_config(LONG), tmp_path / "straight")

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "scontrol").write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "scontrol.log"}\n')
    (fake_bin / "scontrol").chmod(0o755)
    run_dir = tmp_path / "preempted"
    env = child_env(SLURM_JOB_ID="4242", PATH=f"{fake_bin}:{os.environ['PATH']}")
    process = subprocess.Popen(
        command_line(LONG, run_dir), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for_step(run_dir, 4, process)
    process.send_signal(signal.SIGUSR1)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 128 + signal.SIGUSR1, stderr
    assert "requeued SLURM job 4242" in stderr and "Traceback" not in stderr
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    stopped_at = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    assert 4 <= stopped_at < 200, "the checkpoint is written at the step the signal arrived, not at the next ckpt_every"

    # The requeued job (SLURM_RESTART_COUNT > 0, read by the entry point) continues in place by itself.
    resumed = run(compose_config(LONG), run_dir, launch=Launch(requeued=True))
    assert resumed["test"] == straight["test"]


def test_ctrl_c_checkpoints_says_how_to_resume_and_the_resumed_run_matches(tmp_path):
    """A real SIGINT to a real training process; the command it prints continues to the uninterrupted run's numbers."""
    straight = run(compose_config(LONG), tmp_path / "straight")

    run_dir = tmp_path / "interrupted"
    # Started as from a terminal, whatever SIGINT handling pytest inherited.
    from_a_terminal = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)"
    process = subprocess.Popen(
        command_line(LONG, run_dir, from_a_terminal),
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_step(run_dir, 4, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    notice, message = [line for line in stderr.splitlines() if line.strip()]
    assert notice.startswith("Ctrl-C: stopping after this step, with a checkpoint")
    stopped_at = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    assert 4 <= stopped_at < 200, "checkpointed at the step the signal arrived, not at the next ckpt_every"
    assert message.startswith(
        f"Stopped by SIGINT at step {stopped_at} of 200: checkpoint {run_dir / 'checkpoints' / 'last.pt'} written."
    )
    command = shlex.split(message.split("Continue with: ", 1)[1])
    assert command[:3] == ["python", "-m", "conml.train"] and command[-1] == f"resume={run_dir}"

    resumed = train_cli(*command[3:])
    assert resumed.code == 0, resumed.err
    assert f"Resuming {run_dir} at step {stopped_at} of 200" in resumed.out
    assert json.loads((run_dir / "results.json").read_text())["test"] == straight["test"]


@pytest.fixture
def sigint_handler():
    """set(handler): SIGINT's handler for the test, whatever the one pytest was started with (a shell's
    background job starts with SIGINT ignored); the handler from before is put back afterwards."""
    before = signal.getsignal(signal.SIGINT)
    yield lambda handler: signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGINT, before)


def test_a_second_ctrl_c_stops_at_once(sigint_handler):
    from conml.preemption import PreemptionGuard

    sigint_handler(signal.default_int_handler)  # as Python starts from a terminal
    with pytest.raises(KeyboardInterrupt):
        with PreemptionGuard() as guard:
            os.kill(os.getpid(), signal.SIGINT)
            deadline = time.monotonic() + 5
            while guard.requested is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert guard.requested == signal.SIGINT, "the first Ctrl-C is a request to stop at the next step"
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the handler from before is restored"


def test_a_process_started_with_ctrl_c_ignored_keeps_ignoring_it_and_says_so_once(sigint_handler, capsys):
    """`cmd &` in a non-interactive shell (and some CI runners) start a process with SIGINT ignored."""
    from conml.preemption import PreemptionGuard, _say_sigint_is_ignored

    sigint_handler(signal.SIG_IGN)
    _say_sigint_is_ignored.cache_clear()
    for _ in range(2):
        with PreemptionGuard() as guard:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            assert guard.requested is None, "an ignored Ctrl-C does not stop the run"
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 5
            while guard.requested is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert guard.requested == signal.SIGTERM, "SIGTERM still stops it with a checkpoint"
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    said = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith("Ctrl-C (SIGINT) is ignored") and "SIGTERM" in said[0], said


def test_data_workers_leave_ctrl_c_to_the_training_process():
    """A terminal sends Ctrl-C to every process of the run; the workers ignore it, the training process checkpoints."""
    from conml.data.prefetch import _seed_worker

    before = signal.getsignal(signal.SIGINT)
    try:
        _seed_worker(0)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_kill_9_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path):
    overrides = [*TINY, "trainer.steps=8"]
    straight = run(compose_config(overrides), tmp_path / "straight")

    # The third checkpoint write dies half-way, as a node losing power would.
    prelude = (
        "import os, signal, torch\n"
        "real_save, calls = torch.save, [0]\n"
        "def dying_save(state, handle):\n"
        "    calls[0] += 1\n"
        "    if calls[0] == 3:\n"
        "        handle.write(b'half a checkpoint'); handle.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "    real_save(state, handle)\n"
        "torch.save = dying_save\n"
    )
    run_dir = tmp_path / "killed"
    result = subprocess.run(
        command_line(overrides, run_dir, prelude), env=child_env(), capture_output=True, text=True, timeout=180
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    checkpoints = run_dir / "checkpoints"
    assert list(checkpoints.glob(".*.tmp")), "the interrupted write should have left only its temporary file"
    assert load_checkpoint(checkpoints / "last.pt")["step"] == 2

    resumed = run(compose_config([*overrides, f"resume={run_dir}"]), run_dir)
    assert resumed["test"] == straight["test"]
    assert not list(checkpoints.glob(".*.tmp")), "leftovers of the killed write are cleaned on resume"


def test_full_disk_keeps_the_previous_checkpoint_and_says_what_to_do(tmp_path, monkeypatch):
    import conml.checkpoint as checkpoint

    real_save, calls = torch.save, []

    def save_until_full(state, handle):
        calls.append(1)
        if len(calls) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(state, handle)

    monkeypatch.setattr(checkpoint.torch, "save", save_until_full)
    with pytest.raises(OutputError, match="No space left on device") as error:
        run(compose_config([*TINY, "trainer.steps=8"]), tmp_path)
    assert "is intact" in str(error.value) and f"resume={tmp_path}" in str(error.value)
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 2


def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_call, steps = ConMLObjective.__call__, []

    def diverging(self, learner, batch):
        parts = real_call(self, learner, batch)
        steps.append(1)
        if len(steps) > 4:
            parts.total = parts.total * float("nan")
        return parts

    monkeypatch.setattr(ConMLObjective, "__call__", diverging)
    with pytest.raises(TrainingDiverged, match="ending at step 6") as error:
        run(compose_config([*TINY, "trainer.steps=8"]), tmp_path)
    last = tmp_path / "checkpoints" / "last.pt"
    assert str(last) in str(error.value)
    state = load_checkpoint(last)
    assert state["step"] == 4 and all(torch.isfinite(v).all() for v in state["learner"].values())


def test_wandb_without_login_falls_back_to_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home"))
    run(compose_config([*TINY, "logger.mode=online"]), tmp_path / "run")
    assert "Logging offline" in capsys.readouterr().err
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))


def test_wandb_unreachable_falls_back_to_offline(tmp_path, monkeypatch, capsys):
    import wandb

    real_init = wandb.init

    def unreachable(*args, mode=None, **kwargs):
        if mode == "online":
            raise wandb.errors.CommError("could not reach api.wandb.ai")
        return real_init(*args, mode=mode, **kwargs)

    monkeypatch.setattr(wandb, "init", unreachable)
    run(compose_config([*TINY, "logger.mode=online"]), tmp_path)
    assert "CommError: could not reach api.wandb.ai" in capsys.readouterr().err
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))


def test_sigterm_is_recorded_and_the_previous_handler_restored():
    from conml.preemption import PreemptionGuard

    before = signal.getsignal(signal.SIGTERM)
    with PreemptionGuard() as guard:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while guard.requested is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert guard.requested == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


def test_damaged_checkpoint_is_named_on_resume(tmp_path):
    from conml.errors import DataError

    run(compose_config(TINY), tmp_path)
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="last.pt cannot be read"):
        run(compose_config([*TINY, f"resume={tmp_path}"]), tmp_path)


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_matches(tmp_path):
    import random

    straight = run(compose_config(LONG), tmp_path / "straight")
    run_dir, chance = tmp_path / "killed", random.Random(0)
    for _ in range(3):
        process = subprocess.Popen(
            command_line([*LONG, "resume=auto"], run_dir),
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(chance.uniform(4.0, 12.0))  # start-up plus a random share of training
        process.kill()
        process.wait()
    resumed = run(compose_config([*LONG, "resume=auto"]), run_dir)
    assert resumed["test"] == straight["test"]
