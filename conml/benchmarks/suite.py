"""Run the chosen cases, record the machine they ran on, print and save the results."""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from conml.benchmarks.cases import CASES
from conml.benchmarks.results import CaseResult, format_case
from conml.benchmarks.scale import BenchRun
from conml.benchmarks.timing import clock_name
from conml.errors import ConfigError


def select_cases(only: list[str] | None) -> list:
    if not only:
        return list(CASES)
    known = {case.id: case for case in CASES}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ConfigError(f"--only names unknown benchmark(s) {unknown}; choose among {list(known)}.")
    return [known[name] for name in only]


def environment(run: BenchRun) -> dict:
    """What the numbers depend on: hardware, software, threads, clock."""
    device = run.device
    info = {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "clock": clock_name(device),
        "scale": run.scale.name,
        "git_commit": _git_commit(),
        "command": " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        info["driver"] = _nvidia_smi("driver_version")
        info["clocks_mhz"] = _nvidia_smi("clocks.sm,clocks.mem")
    return info


def run_suite(run: BenchRun, only: list[str] | None, out: Path | None) -> list[CaseResult]:
    """Run the cases one after another, printing each result as it is ready."""
    cases = select_cases(only)
    info = environment(run)
    print(
        f"conml benchmarks ({run.scale.name} sizes) on {info['device_name']}, torch {info['torch']}, "
        f"{info['threads']} thread(s), clock: {info['clock']}\n"
    )
    results: list[CaseResult] = []
    started = time.perf_counter()
    for case in cases:
        for result in case.run(run):
            print(format_case(result) + "\n", flush=True)
            results.append(result)
    info["seconds"] = round(time.perf_counter() - started, 1)
    failed = [f"{r.case} [{r.config}]" for r in results if not r.passed]
    targets = [(r, t) for r in results for t in r.targets]
    missed = [f"{r.case} [{r.config}]: {t.name}" for r, t in targets if not t.met]
    print(
        f"{len(results)} configurations in {info['seconds']:.0f} s; gates: "
        + ("all passed" if not failed else f"FAILED in {failed}")
        + f"; targets: {len(targets) - len(missed)} of {len(targets)} met"
        + ("" if not missed else f", MISSED: {missed}")
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"environment": info, "results": [r.as_dict() for r in results]}, indent=2))
        print(f"wrote {out}")
    return results


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _nvidia_smi(query: str) -> str | None:
    try:
        command = ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
