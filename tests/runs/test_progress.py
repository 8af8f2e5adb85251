"""Progress in a log file is one plain line per interval, not a redrawn bar; a terminal keeps the bar."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import pytest

from conml.progress import LINE_EVERY_S, Progress
from tests.conftest import TINY

LINE = re.compile(r"^meta-train: step (\d+)/(\d+) \(\d+%\), loss \d+\.\d{4}, [\d.e+]+ step/s, (ETA|took) \d\d:\d\d$")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_progress_is_at_most_one_line_per_interval(monkeypatch):
    out, clock = io.StringIO(), Clock()
    monkeypatch.setattr(sys, "stdout", out)
    progress = Progress(800, "meta-train", "step", every_s=10.0, clock=clock)
    for step in range(1, 801):  # 100 seconds at 8 steps per second, the loss logged every 10 steps
        clock.now += 0.125
        if step % 10 == 0:
            progress.set_postfix(loss=f"{1 / step:.4f}")
        progress.update()
    progress.close()

    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 100 / 10, "one line per 10 seconds, the last one at the end"
    assert all(LINE.match(line) for line in lines), lines
    assert lines[0] == "meta-train: step 80/800 (10%), loss 0.0125, 8 step/s, ETA 01:30"
    assert lines[-1] == "meta-train: step 800/800 (100%), loss 0.0013, 8 step/s, took 01:40"


def test_a_loop_that_does_not_leave_its_bar_prints_no_last_line(monkeypatch):
    out, clock = io.StringIO(), Clock()
    monkeypatch.setattr(sys, "stdout", out)
    with Progress(4, "test 5-shot", "batch", leave=False, every_s=10.0, clock=clock) as progress:
        for _ in range(4):
            clock.now += 1.0
            progress.update()
    assert out.getvalue() == "", "meta-testing that takes less than an interval prints nothing"


def test_on_a_terminal_the_bar_is_drawn(monkeypatch):
    out, err = Terminal(), Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    with Progress(3, "meta-train", "step", every_s=0.0) as progress:
        for _ in range(3):
            progress.update()
    assert "\r" in err.getvalue() and "3/3" in err.getvalue(), "tqdm's bar, redrawn on stderr"
    assert out.getvalue() == "", "no plain lines on a terminal"


def test_a_run_whose_output_is_a_file_prints_plain_lines(tmp_path):
    """The real command line, its stdout and stderr redirected to a file (SLURM's output, `make train > log`)."""
    run_dir, log = tmp_path / "run", tmp_path / "slurm.out"
    command = [sys.executable, "-m", "conml.train", *TINY, "trainer.steps=40", "trainer.log_every=4"]
    environment = {key: value for key, value in os.environ.items() if key != "TQDM_DISABLE"}
    started = time.monotonic()
    with open(log, "w") as output:
        finished = subprocess.run(
            [*command, f"hydra.run.dir={run_dir}"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**environment, "OMP_NUM_THREADS": "1"},
            timeout=300,
        )
    wall = time.monotonic() - started
    text = log.read_text()
    assert finished.returncode == 0, text[-3000:]

    assert "\r" not in text, "no carriage-return redraws"
    lines = [line for line in text.splitlines() if line.startswith("meta-train:")]
    assert 1 <= len(lines) <= wall / LINE_EVERY_S + 1, lines
    assert all(LINE.match(line) for line in lines), lines
    assert LINE.match(lines[-1]).groups() == ("40", "40", "took")
    assert lines[-1] in (run_dir / "train.log").read_text().splitlines(), "train.log holds the same line"


def test_tqdm_disable_silences_the_plain_lines_of_a_run(tmp_path):
    """TQDM_DISABLE=1, read by the entry point, reaches the trainer and meta-testing as an argument."""
    log = tmp_path / "slurm.out"
    command = [sys.executable, "-m", "conml.train", *TINY, "trainer.steps=40", f"hydra.run.dir={tmp_path / 'run'}"]
    with open(log, "w") as output:
        finished = subprocess.run(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"},
            timeout=300,
        )
    text = log.read_text()
    assert finished.returncode == 0, text[-3000:]
    assert not [line for line in text.splitlines() if line.startswith(("meta-train:", "test "))], text[-3000:]
