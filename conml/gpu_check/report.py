"""The check's report, `<out>/<device>.json` and `.md`, rewritten after every finished item.

A check stopped by a time limit or a crash therefore leaves everything it measured so far, with
`status: running` saying it did not end by itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


def device_slug(name: str) -> str:
    """'NVIDIA H200' -> 'nvidia-h200': the report's file name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


class Report:
    """Parts' results in one JSON-able dict, written as JSON and as Markdown on every `save()`."""

    def __init__(self, out: Path, stem: str, environment: dict):
        self.json_path, self.md_path = out / f"{stem}.json", out / f"{stem}.md"
        self.data: dict[str, Any] = {"environment": environment, "status": "running", "notices": [], "parts": {}}
        out.mkdir(parents=True, exist_ok=True)
        self.save()

    def part(self, name: str) -> dict:
        return self.data["parts"].setdefault(name, {})

    def notice(self, line: str) -> None:
        """A one-line notice (a setting switched off, a stand-in used), printed once and kept in the report."""
        if line not in self.data["notices"]:
            self.data["notices"].append(line)
            print(f"notice: {line}", flush=True)
            self.save()

    def save(self) -> None:
        self.json_path.write_text(json.dumps(self.data, indent=1, default=str))
        self.md_path.write_text(render(self.data))


def render(data: dict) -> str:
    env, parts = data["environment"], data["parts"]
    lines = [
        f"# GPU check: {env.get('device_name')}",
        "",
        f"Written by `{env.get('command')}` on {env.get('date')} (commit {str(env.get('git_commit'))[:10]}), "
        f"torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, driver {env.get('driver')}; "
        f"budget {env.get('budget_s')} s, mode {env.get('mode')}. Status: **{data['status']}**"
        + (
            f" after {data['seconds']:.0f} s."
            if "seconds" in data
            else " (the check did not end by itself: partial results)."
        ),
        "",
    ]
    if data["notices"]:
        lines += ["## Notices", "", *(f"- {n}" for n in data["notices"]), ""]
    renderers = {"settings": _settings, "tests": _tests, "presets": _presets, "bench": _bench}
    for name, part in parts.items():
        lines += renderers[name](part) + [""]
    return "\n".join(lines)


def _header(title: str, part: dict) -> list[str]:
    took = f" ({part['seconds']:.0f} s)" if "seconds" in part else " (not finished)"
    lines = [f"## {title}{took}", ""]
    if part.get("error"):
        lines += [f"**The part broke off**: {part['error']}", "", "```", *part.get("trace", []), "```", ""]
    return lines


def _settings(part: dict) -> list[str]:
    lines = _header("Performance settings against their gates", part)
    lines += [
        "Each setting's meta-gradient (second-order MAML, Conv-4 with BatchNorm, gate size) on this device against "
        "float64 on the CPU; a setting that fails is switched off for the presets below.",
        "",
        "| setting | error | tolerance | verdict |",
        "|---|---|---|---|",
    ]
    for gate in part.get("gates", []):
        error = "-" if gate.get("error") is None else f"{gate['error']:.1e}"
        tolerance = "-" if gate.get("tolerance") is None else f"{gate['tolerance']:.0e}"
        lines.append(f"| {gate['setting']} | {error} | {tolerance} | {gate['verdict']} |")
    return lines


def _tests(part: dict) -> list[str]:
    lines = _header("Correctness tests on the device (`pytest -m gpu`)", part)
    if "counts" in part:
        lines.append(
            ", ".join(f"{count} {outcome}" for outcome, count in part["counts"].items())
            + f" (exit code {part.get('exit_code')})."
        )
    failed = [t for t in part.get("tests", []) if t["outcome"] not in ("passed", "skipped")]
    if failed:
        lines += ["", "| test | outcome | message |", "|---|---|---|"]
        lines += [f"| {t['name']} | {t['outcome']} | {t['message'][:200].replace('|', '/')} |" for t in failed]
    if part.get("output_tail"):
        lines += ["", "```", part["output_tail"], "```"]
    return lines


def _presets(part: dict) -> list[str]:
    lines = _header("Experiment presets", part)
    lines += [
        part.get("method", ""),
        "",
        "| preset | data | s/step | peak GiB | reserved GiB | examples/task | projected train h | projected total h | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in part.get("results", []):
        cell = lambda key, fmt: "-" if r.get(key) is None else format(r[key], fmt)  # noqa: E731
        lines.append(
            f"| {r['preset']} | {r.get('data', '-')} | {cell('seconds_per_step', '.3f')} | {cell('peak_gib', '.2f')} | "
            f"{cell('reserved_gib', '.2f')} | {r.get('examples_per_task', '-')} | {cell('projected_train_hours', '.2f')} | "
            f"{cell('projected_total_hours', '.2f')} | {r['status']} |"
        )
    return lines


def _bench(part: dict) -> list[str]:
    lines = _header("Benchmarks B1, B1b, B3, B5", part)
    if part.get("scale"):
        lines += [part["scale"], ""]
    if part.get("text"):
        lines += ["```", *part["text"], "```"]
    return lines
