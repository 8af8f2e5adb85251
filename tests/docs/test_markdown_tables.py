"""Every Markdown table in the docs has as many cells in each row as in its header: a row with one cell too many
or too few renders shifted under the wrong columns (or not at all), which a reader takes for the wrong number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
CODE_SPAN = re.compile(r"`[^`]*`")
FENCE = "```"


def cell_count(row: str) -> int:
    """Cells of one table row; pipes inside code spans or escaped as `\\|` do not separate cells."""
    text = CODE_SPAN.sub("code", row.replace("\\|", "")).strip()
    return len(text.strip("|").split("|"))


def misshapen_rows(text: str) -> list[str]:
    """'line N: k cells under a header of h' for each table row whose cell count differs from its header's."""
    problems, header, in_fence = [], None, False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith(FENCE):
            in_fence, header = not in_fence, None
            continue
        if in_fence or not line.lstrip().startswith("|"):
            header = None
            continue
        if header is None:
            header = cell_count(line)
        elif cell_count(line) != header:
            problems.append(f"line {number}: {cell_count(line)} cells under a header of {header}")
    return problems


def test_a_row_with_a_cell_too_many_is_found():
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n| 1 | 2 | 3 |\n\n| c |\n|---|\n| `x | y` |\n"
    assert misshapen_rows(table) == ["line 4: 3 cells under a header of 2"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_row_has_its_headers_cell_count(document):
    problems = misshapen_rows(document.read_text())
    assert not problems, f"{document.relative_to(ROOT)}: " + "; ".join(problems)
