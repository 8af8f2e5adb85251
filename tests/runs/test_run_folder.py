"""A run that is refused changes nothing on disk; one run per folder; the run folder, its lock, its
config record and its log.

Every refusal goes through the real command line (Hydra, its callbacks, `main`) and is checked for
its message, its exit code, and a byte-for-byte unchanged disk: an earlier run's files and the
outputs folder are fingerprinted before and after.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conml.run_folder import RunFolderBusy, _lock
from tests.conftest import TINY
from tests.runs.test_faults import child_env, command_line
from tests.train_cli import checksums, train_cli

# (overrides, what the message must say, exit code); {earlier} is a finished run of TINY (4 steps),
# {root} the folder holding it and the outputs folder.
REFUSALS = [
    (["trainer.steps=-5"], ["trainer.steps=-5 is out of range", "integer ≥ 1", "e.g. trainer.steps=5000"], 2),
    (["trainer.meta_batch_size=0"], ["trainer.meta_batch_size=0 is out of range", "≥ 1"], 2),
    (["trainer.meta_batch_size=1"], ["trainer.meta_batch_size=1", "d_out", "at least 2 tasks", "conml=alignment"], 2),
    (["conml.lam=-1"], ["conml.lam=-1.0 is out of range", "finite number ≥ 0"], 2),
    (["conml.lam=nan"], ["conml.lam=nan is out of range"], 2),
    (["conml.subset_fraction=0"], ["conml.subset_fraction=0.0 is out of range", "> 0 and ≤ 1"], 2),
    (["eval.shots=[0]"], ["eval.shots=[0] is out of range", "each value must be an integer ≥ 1"], 2),
    (["eval.shots=[]"], ["eval.shots=[] names no value"], 2),
    (["eval.queries=0"], ["eval.queries=0 is out of range"], 2),
    (["trainer.grad_clip=0"], ["trainer.grad_clip=0.0 is out of range", "> 0"], 2),
    (["trainer.workers=-1"], ["trainer.workers=-1 is out of range", "≥ 0"], 2),
    (["trainer.patience=0"], ["trainer.patience=0 is out of range"], 2),
    (["+foo=1"], ["foo is not a setting this project knows", "resume, scheduler, seed, trainer"], 2),
    (["+trainer.stepz=3"], ["trainer.stepz is not a setting this project knows", "steps, meta_batch_size"], 2),
    (["learner=protonet"], ["builds its task models from class labels", "regression tasks"], 2),
    (["model=gpt2_tiny"], ["model.in_features is ${dataset.dims}", "cannot resolve it", "dataset.dims"], 2),
    (["learner.inner_lr=-1"], ["learner.inner_lr=-1 is out of range", "finite number > 0"], 2),
    (
        ["+optimizer.weight_decay=-1"],
        ["optimizer (torch.optim.Adam) refuses its settings: Invalid weight_decay value: -1"],
        2,
    ),
    (["device=tpu"], ["device=tpu is not a device this project runs on", "cpu, cuda or cuda:N"], 2),
    (["dataset.shots=0"], ["dataset.shots"], 2),
    (["eval.checkpoint=final"], ["eval.checkpoint", "best", "last"], 1),
    (
        ["resume={earlier}", "conml.lam=0.5"],
        ["started with different settings (conml.lam: ", " -> 0.5; started -> now)"],
        2,
    ),
    (["resume={root}/absent"], ["there is no such folder"], 2),
    (["resume="], ["resume= is empty", "resume=auto"], 2),
    (["resume={earlier}/checkpoints/last.pt"], ["is a file", "resume=<run folder>"], 2),
    (["resume={earlier}", "hydra.run.dir={root}/elsewhere"], ["a run continues in its own folder"], 2),
    (
        ["resume={earlier}", "trainer.steps=2"],
        ["already at step 4, beyond trainer.steps=2", "trainer.steps=4 or more"],
        2,
    ),
    (["hydra.run.dir={earlier}"], ["already holds a run", "resume="], 2),
]


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """A finished run, in a folder beside the outputs folder that refused runs would write to."""
    folder = tmp_path_factory.mktemp("disk") / "earlier"
    finished = train_cli(*TINY, f"hydra.run.dir={folder}")
    assert finished.code == 0, finished.err
    return folder


@pytest.mark.parametrize("overrides, expected, code", REFUSALS, ids=[" ".join(case[0]) for case in REFUSALS])
def test_a_refused_run_says_why_in_one_paragraph_and_changes_nothing_on_disk(earlier, overrides, expected, code):
    root = earlier.parent
    before = checksums(root)
    overrides = [o.format(earlier=earlier, root=root) for o in overrides]
    finished = train_cli(*TINY, f"paths.output_dir={root / 'outputs'}", *overrides)
    assert finished.code == code, finished.err
    for text in expected:
        assert text in finished.err, finished.err
    assert "Traceback" not in finished.err + finished.out
    if code == 2:
        assert [line for line in finished.err.splitlines() if line.strip()] == [finished.err.strip()], "one paragraph"
    assert checksums(root) == before, "a refused run must not create, change or remove anything"


def test_a_refused_resume_keeps_the_original_runs_config_record(earlier):
    record = (earlier / ".hydra" / "config.yaml").read_text()
    assert "lam: 0.1" in record and train_cli(*TINY, f"resume={earlier}", "conml.lam=0.5").code == 2
    assert (earlier / ".hydra" / "config.yaml").read_text() == record


def test_two_runs_started_at_once_into_one_folder_one_is_refused(tmp_path):
    """Two real processes, different seeds, the same hydra.run.dir: one runs, the other is refused in one line."""
    run_dir = tmp_path / "shared"
    overrides = [*TINY, "trainer.steps=200", "trainer.val_every=100", "trainer.ckpt_every=100"]
    processes = [
        subprocess.Popen(
            command_line([*overrides, f"seed={seed}"], run_dir),
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 1)
    ]
    finished = [(p.wait(timeout=300), *p.communicate()) for p in processes]
    codes = sorted(code for code, _, _ in finished)
    assert codes == [0, 2], finished
    _, _, refusal = next(f for f in finished if f[0] == 2)
    assert [line for line in refusal.splitlines() if line.strip()] == [refusal.strip()], refusal
    assert f"{run_dir} is in use by another run (process" in refusal and "nothing was written" in refusal

    winner = json.loads((run_dir / "results.json").read_text())["seed"]
    assert f"seed: {winner}" in (run_dir / ".hydra" / "config.yaml").read_text()
    steps = [
        json.loads(line)["step"]
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if "train/loss" in line
    ]
    assert steps == sorted(set(steps)) and steps[-1] == 200, "metrics of one run only"
    assert not (run_dir / ".lock").exists(), "the lock is released when the run ends"


def test_a_live_lock_refuses_and_a_dead_runs_lock_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(run_dir / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'process 4242 on elsewhere'); print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = checksums(run_dir)
        refused = train_cli(*TINY, f"hydra.run.dir={run_dir}")
        assert refused.code == 2 and "is in use by another run (process 4242 on elsewhere)" in refused.err
        assert checksums(run_dir) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder died without removing its lock file: the file stays, the lock does not.
    assert (run_dir / ".lock").read_text() == "process 4242 on elsewhere"
    finished = train_cli(*TINY, f"hydra.run.dir={run_dir}")
    assert finished.code == 0, finished.err
    assert (run_dir / "results.json").exists() and not (run_dir / ".lock").exists()


def test_a_holder_caught_between_locking_and_stamping_is_still_named(tmp_path):
    """The refusal names the holder even when it is read in the moment before the holder's stamp is written."""
    lock = tmp_path / ".lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.readline()\n"
            "os.write(fd, b'process 4242 on elsewhere'); time.sleep(120)",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock.read_text() == "", "the lock is held and not yet stamped"
        stamp_soon = threading.Timer(0.2, lambda: (holder.stdin.write("stamp\n"), holder.stdin.flush()))
        stamp_soon.start()
        with pytest.raises(RunFolderBusy, match=r"in use by another run \(process 4242 on elsewhere\)"):
            _lock(lock)
        stamp_soon.join()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


@pytest.mark.parametrize("where", ["new folder", "existing run folder"])
def test_an_unwritable_output_folder_is_one_paragraph(tmp_path, monkeypatch, where):
    """A folder the run may not write to; simulated, as tests may run as root, whom permissions do not stop."""
    blocked, real_mkdir, real_open = str(tmp_path / "read-only"), os.mkdir, os.open
    run_dir = tmp_path / "read-only" / "run"
    if where == "existing run folder":
        run_dir.mkdir(parents=True)

    def refusing(real, writes):
        def call(path, *args, **kwargs):
            if str(path).startswith(blocked) and writes(*args):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "mkdir", refusing(real_mkdir, lambda *args: True))
    monkeypatch.setattr(
        os, "open", refusing(real_open, lambda flags, *args: bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
    )
    finished = train_cli(*TINY, f"hydra.run.dir={run_dir}")
    monkeypatch.undo()
    assert finished.code == 2, finished.err
    assert (
        "Cannot write the run folder" in finished.err
        and "Permission denied" in finished.err
        and "paths.output_dir=" in finished.err
    )
    assert "Traceback" not in finished.err and [line for line in finished.err.splitlines() if line.strip()] == [
        finished.err.strip()
    ]
    assert sorted(p.name for p in tmp_path.rglob("*")) == (
        ["read-only", "run"] if where == "existing run folder" else []
    )


def test_the_start_line_names_the_device_and_train_log_holds_the_run(tmp_path):
    import torch

    run_dir = tmp_path / "run"
    finished = train_cli(*TINY, "device=auto", f"hydra.run.dir={run_dir}")
    assert finished.code == 0, finished.err
    device = "cuda" if torch.cuda.is_available() else "cpu"
    start = f"Meta-training 4 steps in {run_dir}, on {device}"
    assert start in finished.out and "(device=auto)" in finished.out
    log = (run_dir / "train.log").read_text()
    assert start in log and "meta-test results (mean ± 95% CI)" in log and "mse@10shot" in log
    assert sorted(p.name for p in (run_dir / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]

    resumed = train_cli(*TINY, "device=auto", "trainer.steps=6", f"resume={run_dir}")
    assert resumed.code == 0, resumed.err
    log = (run_dir / "train.log").read_text()
    assert start in log and f"Resuming {run_dir} at step 4 of 6" in log, "a resumed run appends to its log"
    assert "trainer.steps=6" in (run_dir / ".hydra" / "overrides.yaml").read_text()


def test_a_failure_after_start_up_keeps_the_run_folder(tmp_path, monkeypatch):
    """Only refused runs leave no trace: a run that fails once it has started keeps what it wrote."""
    from conml.objective import ConMLObjective

    real_call = ConMLObjective.__call__

    def diverging(self, learner, batch):
        parts = real_call(self, learner, batch)
        parts.total = parts.total * float("nan")
        return parts

    monkeypatch.setattr(ConMLObjective, "__call__", diverging)
    finished = train_cli(*TINY, f"hydra.run.dir={tmp_path / 'run'}")
    assert finished.code == 2 and "non-finite" in finished.err
    assert "non-finite" in (tmp_path / "run" / "train.log").read_text()


def test_interrupt_during_start_up_writes_nothing(tmp_path, monkeypatch):
    import conml.train as train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "build_source_and_learner", interrupted)
    finished = train_cli(*TINY, f"paths.output_dir={tmp_path / 'outputs'}")
    assert finished.code == 130 and "Interrupted. There is no checkpoint to continue from." in finished.err
    assert "Traceback" not in finished.err
    assert not (tmp_path / "outputs").exists()


def test_interrupt_inside_hydra_as_the_run_folder_appears_writes_nothing(tmp_path, monkeypatch):
    """Ctrl-C after Hydra made the folder and before the run's own handling (Hydra's run_job sets up logging there)."""
    import hydra.core.utils

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hydra.core.utils, "configure_log", interrupted)
    finished = train_cli(*TINY, f"paths.output_dir={tmp_path / 'outputs'}")
    assert finished.code == 130 and "Interrupted during start-up; nothing was written." in finished.err
    assert "Traceback" not in finished.err
    assert not (tmp_path / "outputs").exists()


def test_interrupt_while_torch_loads_is_one_line_and_exit_130(tmp_path):
    """Ctrl-C in the first second, while `python -m conml.train` imports torch: made certain by an import hook."""
    start = (
        "import builtins, runpy, sys\n"
        "real = builtins.__import__\n"
        "def hooked(name, *args, **kwargs):\n"
        "    if name == 'torch':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = hooked\n"
        f"sys.argv = ['conml.train', 'debug=tiny', 'paths.output_dir={tmp_path / 'outputs'}']\n"
        "runpy.run_module('conml.train', run_name='__main__', alter_sys=True)\n"
    )
    finished = subprocess.run([sys.executable, "-c", start], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 130, finished.stderr
    assert finished.stderr.strip() == "Interrupted during start-up; nothing was written."
    assert not (tmp_path / "outputs").exists()


def test_a_run_that_finished_in_the_folder_after_the_checks_is_not_overwritten(tmp_path):
    """The race of two runs started at once, made certain: the other run has finished and let go of the
    folder by the time this one takes it, so the folder is checked again once locked."""
    from conml.errors import ConfigError
    from conml.run_folder import hold
    from tests.conftest import compose_config

    folder = tmp_path / "shared"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.pt").write_bytes(b"the other run")
    before = checksums(folder)
    with pytest.raises(ConfigError, match="already holds a run.*nothing was overwritten"):
        with hold(folder, compose_config(TINY), fresh=True):
            pytest.fail("the run must not start")
    assert checksums(folder) == before


def test_a_requeued_job_continues_in_its_own_folder_without_resume(tmp_path, monkeypatch):
    """SLURM_RESTART_COUNT > 0 is read at the entry point: the requeued job takes up its checkpoint by itself,
    where a new run in a folder that holds one is refused."""
    folder = f"hydra.run.dir={tmp_path / 'run'}"
    assert train_cli(*TINY, "trainer.steps=2", folder).code == 0
    refused = train_cli(*TINY, "trainer.steps=4", folder)
    assert refused.code == 2 and "already holds a run" in refused.err
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    continued = train_cli(*TINY, "trainer.steps=4", folder)
    assert continued.code == 0, continued.err
    assert json.loads((tmp_path / "run" / "results.json").read_text())["steps"] == 4
