"""The README's table of config groups lists every option that exists, and its make targets exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GROUPS = ("dataset", "model", "learner", "optimizer", "scheduler", "conml", "logger")


def test_readme_lists_every_group_option():
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"{group}/{path.stem}"
        for group in GROUPS
        for path in (ROOT / "configs" / group).glob("*.yaml")
        if f"`{path.stem}`" not in readme
    ]
    assert not missing, f"README.md's group table lacks: {missing}"


def test_make_targets_named_in_the_readme_exist():
    readme, makefile = (ROOT / "README.md").read_text(), (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z0-9_.-]+):", makefile, flags=re.M))
    named = set(re.findall(r"\bmake ([a-z][a-z0-9-]*[a-z0-9])(?![\w-])", readme))  # not the generic "make table-N"
    assert named and named <= targets, f"README.md names make targets that do not exist: {sorted(named - targets)}"
