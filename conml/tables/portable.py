"""A run's results.json as it is committed: without the machine's folders.

A run records its resolved config, so results.json holds absolute paths of the machine it ran on (the data
folder, `CONML_DATA`, and everything under it such as `dataset.root`). The exported copy writes `<data_dir>`
and `<output_dir>` in their place; the table reads the copy as it reads the run (a cell's protocol is
composed with the run's own `paths`, so `dataset.root` still agrees with `paths.data_dir`).
"""

from __future__ import annotations

import json
from typing import Any

TOKENS = {"data_dir": "<data_dir>", "output_dir": "<output_dir>"}


def portable_results(text: str) -> str:
    """results.json with the absolute `paths.data_dir` and `paths.output_dir` (and every path below them)
    written as their tokens; a results.json without absolute paths comes back unchanged."""
    results = json.loads(text)
    paths = results.get("config", {}).get("paths", {})
    prefixes = {
        folder.rstrip("/"): token
        for key, token in TOKENS.items()
        if isinstance(folder := paths.get(key), str) and folder.startswith("/")
    }
    if not prefixes:
        return text
    return json.dumps(_replaced(results, prefixes), indent=2) + ("\n" if text.endswith("\n") else "")


def _replaced(node: Any, prefixes: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _replaced(value, prefixes) for key, value in node.items()}
    if isinstance(node, list):
        return [_replaced(value, prefixes) for value in node]
    if isinstance(node, str):
        for prefix, token in sorted(prefixes.items(), key=lambda item: -len(item[0])):
            if node == prefix or node.startswith(prefix + "/"):
                return token + node[len(prefix) :]
    return node
