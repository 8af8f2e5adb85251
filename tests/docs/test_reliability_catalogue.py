"""docs/reliability.md names, for every fault, the test that covers it; those tests must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_named_in_the_catalogue_exists():
    text = (ROOT / "docs" / "reliability.md").read_text()
    named, current_file = [], None
    # "tests/x.py::test_a", and "`::test_b`" continuing the same file within a cell.
    for path, name in re.findall(r"(tests/[\w/]+\.py)?::(test_\w+)", text):
        current_file = path or current_file
        named.append((current_file, name))
    assert len(named) >= 30
    missing = [f"{path}::{name}" for path, name in named if f"def {name}(" not in (ROOT / path).read_text()]
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
