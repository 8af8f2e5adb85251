"""The launcher's environment is read in one place, at the entry point."""

import subprocess
import sys
from pathlib import Path

from conml.launch import Launch

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_and_slurm_variables_become_one_launch():
    assert Launch.from_environment({}) == Launch(1, 0, False, None, progress=True)
    assert Launch.from_environment({"TQDM_DISABLE": "1"}) == Launch(progress=False), "tqdm's switch, for lines too"
    torchrun = {"WORLD_SIZE": "4", "LOCAL_RANK": "3"}
    assert Launch.from_environment(torchrun) == Launch(world_size=4, local_rank=3)
    slurm = {"SLURM_JOB_ID": "77", "SLURM_RESTART_COUNT": "0"}
    assert Launch.from_environment(slurm) == Launch(slurm_job="77")
    array = {"SLURM_JOB_ID": "78", "SLURM_ARRAY_JOB_ID": "70", "SLURM_ARRAY_TASK_ID": "5", "SLURM_RESTART_COUNT": "2"}
    assert Launch.from_environment(array) == Launch(requeued=True, slurm_job="70_5"), (
        "an array task is requeued by its id"
    )


def test_only_entry_points_read_the_environment():
    """Modules below the entry points take what the environment said as arguments."""
    entry_points = {
        "conml/launch.py",  # read by conml/train.py's entry
        "conml/tables/cli.py",  # scripts/table.py
        "conml/wandb_sync.py",  # python -m conml.wandb_sync
        "conml/data/images/prepare.py",  # scripts/prepare_*.py
        "conml/data/images/omniglot_prepare.py",
        "conml/data/metadataset/prepare.py",
    }
    found = subprocess.run(
        ["git", "grep", "-l", "-E", r"os\.environ\.get|os\.getenv|os\.environ\[", "--", "conml/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if found.returncode > 1:  # not a git checkout: read the files instead
        readers = {
            str(p.relative_to(ROOT))
            for p in (ROOT / "conml").rglob("*.py")
            if any(k in p.read_text() for k in ("os.environ.get", "os.getenv", "os.environ["))
        }
    else:
        readers = set(found.stdout.split())
    assert readers <= entry_points, (
        f"read the environment at the entry point and pass it down: {sorted(readers - entry_points)}"
    )
