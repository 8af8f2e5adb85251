"""`make wandb-sync DIR=...` (conml/wandb_sync.py) finds every offline run under a folder, the parts of a
resumed run included, and refuses without an API key; nothing here reaches the network."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conml import wandb_sync
from conml.wandb_sync import main, offline_runs, sync_command


def offline_run(run_folder: Path, started: str, run_id: str) -> Path:
    folder = run_folder / "wandb" / f"offline-run-{started}-{run_id}"
    (folder / "files").mkdir(parents=True)
    (folder / f"run-{run_id}.wandb").write_bytes(b":W&B")
    return folder


@pytest.fixture
def multirun(tmp_path):
    """Two jobs; the first resumed once (two offline folders of one run), with W&B's latest-run link."""
    root = tmp_path / "multirun"
    first = offline_run(root / "0_sine_seed=0", "20250101_120000", "aaaa1111")
    resumed = offline_run(root / "0_sine_seed=0", "20250101_130500", "aaaa1111")
    (root / "0_sine_seed=0" / "wandb" / "latest-run").symlink_to(resumed)
    other = offline_run(root / "1_sine_seed=1", "20250101_121000", "bbbb2222")
    (root / "1_sine_seed=1" / "wandb" / "offline-run-20250101_121500-cccc3333").mkdir()  # no run file: not a run
    return root, [first, resumed, other]


@pytest.fixture
def no_key(tmp_path, monkeypatch):
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_every_offline_run_is_found_resumed_parts_in_order(multirun):
    root, expected = multirun
    assert offline_runs(root) == expected
    assert offline_runs(root / "0_sine_seed=0") == expected[:2], "a single run folder works too"


def test_without_an_api_key_it_refuses_in_one_paragraph(multirun, no_key, monkeypatch, capsys):
    (no_key / ".netrc").write_text("machine example.org login user password secret\n")
    monkeypatch.setattr(wandb_sync.subprocess, "run", lambda *a, **k: pytest.fail("must not sync"))
    with pytest.raises(SystemExit) as stop:
        main([str(multirun[0])])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err.removeprefix("error: ") and "wandb login" in err and "Found 3 offline" in err


def test_with_a_netrc_entry_or_key_it_syncs_every_run(multirun, no_key, monkeypatch):
    root, expected = multirun
    (no_key / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "x" * 40 + "\n")
    os.chmod(no_key / ".netrc", 0o600)
    calls = []
    monkeypatch.setattr(
        wandb_sync.subprocess, "run", lambda command: calls.append(command) or type("R", (), {"returncode": 0})
    )
    assert main([str(root)]) == 0
    assert calls == [[sys.executable, "-m", "wandb", "sync", *map(str, expected)]]
    (no_key / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert sync_command(root)[4:] == list(map(str, expected))


def test_a_folder_without_offline_runs_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path)])
    assert "no offline W&B run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
    assert "is not a folder" in capsys.readouterr().err
