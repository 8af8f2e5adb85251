"""`make gpu-check`: prove the project on one GPU within minutes, with no dataset prepared.

Four parts, each within its share of one time budget, the report rewritten after every item:

1. settings: TF32, bf16, channels_last and CUDA graphs against their gates (`settings.py`); a setting
   that fails is switched off, with a notice, for everything after it;
2. tests: the `gpu`-marked correctness tests (`pytest -m gpu`) on this device;
3. presets: every table cell (configs/table/) and preset file for a few steps at its paper sizes (`presets.py`, `measure.py`):
   seconds per step, peak memory, projected wall time of the whole preset;
4. bench: benchmark cases B1, B1b, B3 and B5 at paper sizes, with shorter timing loops than `make bench`.

`--device cpu --tiny` runs the same code on a CPU at tiny sizes in well under a minute of work; the
default test suite runs it that way, so the check cannot rot while no GPU is around.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from omegaconf import open_dict

from conml.benchmarks.results import format_case
from conml.benchmarks.scale import PAPER, SMOKE, BenchRun
from conml.benchmarks.suite import environment, select_cases
from conml.composer import CONFIGS, Composer
from conml.gpu_check.budget import Budget
from conml.gpu_check.measure import GIB, eval_seconds_per_task, measure_steps, projected_seconds, test_set_count
from conml.gpu_check.presets import (
    TINY,
    TINY_PRESETS,
    build_preset,
    choose_data,
    preset_names,
    shrink,
    stand_in_pretrained,
    step_signature,
)
from conml.gpu_check.report import Report, device_slug
from conml.gpu_check.settings import Verdicts, check_settings
from conml.tables.table_sweep import preset_overrides
from conml.task_chunks import AUTO

ROOT = CONFIGS.parent
PARTS = {"settings": 0.06, "tests": 0.16, "presets": 0.5, "bench": 0.28}
BENCH_CASES = ["B1", "B1b", "B3", "B5"]
# Paper sizes with short timing loops: enough iterations for a median, not for `make bench`'s tails.
CHECK_SCALE = replace(PAPER, name="paper (gpu-check timing)", warmup=2, repeats=20, max_seconds=1.0)


@dataclass
class Options:
    device: torch.device
    tiny: bool
    out: Path
    budget: float
    parts: list[str]
    presets: list[str] | None
    data: str  # auto | synthetic
    steps: int  # timed steps per preset (after one warm-up step)


def run_check(options: Options) -> int:
    """Run the chosen parts; 0 if every correctness check passed (a preset out of memory is a finding, not a failure)."""
    device = options.device
    scale = SMOKE if options.tiny else CHECK_SCALE
    info = environment(BenchRun(scale, device)) | {
        "budget_s": options.budget,
        "mode": "tiny sizes" if options.tiny else "paper sizes",
    }
    stem = device_slug(info["device_name"]) + ("-tiny" if options.tiny else "")
    report = Report(options.out, stem, info)
    budget = Budget(
        options.budget, {part: PARTS[part] / sum(PARTS[p] for p in options.parts) for part in options.parts}
    )
    budget.say(f"{info['device_name']}, torch {info['torch']}, {info['mode']}; report: {report.md_path}")
    verdicts = Verdicts({})
    if device.type == "cuda" and "settings" not in options.parts:
        report.notice("the settings part did not run: presets and benchmarks ran with their settings ungated")
    failed = False
    for part in options.parts:
        budget.begin(part)
        started = time.perf_counter()
        section = report.part(part)
        try:
            if part == "settings":
                verdicts, bad = settings_part(device, section, report)
            elif part == "tests":
                bad = tests_part(device, budget, section, report)
            elif part == "presets":
                bad = presets_part(options, verdicts, budget, section, report)
            else:
                bad = bench_part(BenchRun(scale, device), budget, section, report)
        except Exception as error:  # noqa: BLE001 - a part that breaks is reported; the next part still runs
            traceback.print_exc()
            section["error"] = f"{type(error).__name__}: {error}"
            section["trace"] = traceback.format_exc().strip().splitlines()[-8:]
            bad = True
        failed |= bad
        section["seconds"] = time.perf_counter() - started
        report.save()
    report.data["status"] = "failed" if failed else "passed"
    report.data["seconds"] = budget.elapsed()
    report.save()
    budget.say(f"{report.data['status']}; wrote {report.md_path} and {report.json_path.name}")
    return 1 if failed else 0


def settings_part(device: torch.device, section: dict, report: Report) -> tuple[Verdicts, bool]:
    rows, verdicts = check_settings(device)
    section["gates"] = rows
    for row in rows:
        if row["verdict"].startswith("FAIL") and row["setting"] != "float32":
            report.notice(
                f"{row['setting']} failed its gate on this device (error {row['error']}): switched off for the rest of the check"
            )
    report.save()
    return verdicts, any(row["setting"] == "float32" and row["verdict"].startswith("FAIL") for row in rows)


def tests_part(device: torch.device, budget: Budget, section: dict, report: Report) -> bool:
    """`pytest -m gpu` on this device in a child process; one row per test from its JUnit XML."""
    with tempfile.TemporaryDirectory() as scratch:
        xml = Path(scratch) / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "gpu",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={xml}",
            "tests",
        ]
        env = os.environ | {"CONML_CHECK_DEVICE": str(device)}
        section["command"] = f"CONML_CHECK_DEVICE={device} python -m pytest -m gpu tests"
        try:
            done = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(budget.left(), 10.0)
            )
            section["exit_code"], output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as expired:
            section["exit_code"], output = (
                "timeout",
                f"stopped after {expired.timeout:.0f} s (its time budget)\n{expired.stdout or ''}",
            )
        section["tests"] = _junit(xml) if xml.exists() else []
    counts: dict[str, int] = {}
    for test in section["tests"]:
        counts[test["outcome"]] = counts.get(test["outcome"], 0) + 1
    section["counts"] = counts
    bad = section["exit_code"] != 0
    if bad:
        section["output_tail"] = "\n".join(str(output).strip().splitlines()[-30:])
    budget.say(f"tests: {counts} (exit code {section['exit_code']})")
    report.save()
    return bad


def _junit(path: Path) -> list[dict]:
    """One row per test case of a JUnit XML file: name, outcome, seconds, first line of its message."""
    outcomes = {"failure": "failed", "error": "error", "skipped": "skipped"}
    rows = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        verdict = next((child for child in case if child.tag in outcomes), None)
        message = (verdict.get("message") or "") if verdict is not None else ""
        rows.append(
            {
                "name": f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}",
                "outcome": "passed" if verdict is None else outcomes[verdict.tag],
                "seconds": float(case.get("time", 0)),
                "message": message.splitlines()[0] if message else "",
            }
        )
    return rows


def presets_part(options: Options, verdicts: Verdicts, budget: Budget, section: dict, report: Report) -> bool:
    """Every preset (one per distinct step) for `options.steps` steps; projected wall time from the measured rates."""
    device = options.device
    section["method"] = (
        f"{'Tiny sizes (not paper sizes)' if options.tiny else 'Paper sizes'}; one warm-up step, then the median of "
        f"{options.steps} timed steps (sampling included) on the run's last meta-batches. Peak: "
        + (
            "the CUDA allocator's high-water mark (`reserved` adds its cached blocks; the CUDA context is extra)."
            if device.type == "cuda"
            else "tensor storages alive at once (CPU)."
        )
        + " Projected: trainer.steps x s/step, and with validation and meta-testing at the measured time per evaluation "
        "task (a batch of eval.batch_size timed; early stopping may end a run sooner). "
        "Presets whose steps are identical (they differ only in dataset name, paths, step budget or evaluation) are run once."
    )
    results = section.setdefault("results", [])
    failed = False
    with Composer() as composer, tempfile.TemporaryDirectory() as scratch:
        names = preset_names(options.presets or (list(TINY_PRESETS) if options.tiny else None))
        configs = {}
        for name in names:
            cfg = composer([*preset_overrides(name), f"device={device}", "logger.mode=disabled"])
            if options.tiny:
                shrink(cfg, TINY)
            configs[name] = cfg
        first_with: dict[str, str] = {}
        measured: dict[str, dict] = {}
        for done, (name, cfg) in enumerate(configs.items(), 1):
            signature = step_signature(cfg)
            result = {"preset": name, "meta_batch": cfg.trainer.meta_batch_size, "steps": cfg.trainer.steps}
            if signature in first_with:
                result |= _same_step_as(first_with[signature], measured.get(first_with[signature]), cfg)
            elif budget.left() <= 0:
                result["status"] = "not run: the part's time budget was spent"
            else:
                first_with[signature] = name
                result |= _run_preset(name, cfg, options, verdicts, Path(scratch), report)
                measured[name] = result
                failed |= result["status"].startswith("ERROR")
            results.append(result)
            report.save()
            budget.progress(done, len(configs), _summary(result))
    return failed


def _run_preset(name: str, cfg, options: Options, verdicts: Verdicts, scratch: Path, report: Report) -> dict:
    """Build and measure a preset; one that runs out of GPU memory whole is measured again with `trainer.task_chunk=auto`."""
    result = {}
    try:
        result["data"] = choose_data(cfg, options.data)
        if stand_in_pretrained(cfg, scratch):
            result["data"] += ", random pretrained"
            report.notice(
                "'random pretrained': the pretrained weights were not found; random weights of the same network stand in (time and memory do not depend on them)"
            )
        try:
            result |= _measure_preset(cfg, options, verdicts, report)
        except torch.cuda.OutOfMemoryError as error:
            result["status"] = (
                f"out of memory on this {_memory_gib(options.device)} GiB device ({str(error).splitlines()[0][:100]})"
            )
            _release(options.device)
            if cfg.trainer.task_chunk is None:
                with open_dict(cfg):
                    cfg.trainer.task_chunk = AUTO
                result |= _measure_preset(cfg, options, verdicts, report)
                result["status"] = f"ok with task_chunk={result['task_chunk']} (the whole meta-batch ran out of memory)"
    except torch.cuda.OutOfMemoryError as error:
        result["status"] += f"; with task_chunk=auto too ({str(error).splitlines()[0][:100]})"
    except Exception as error:  # noqa: BLE001 - one preset's failure is reported, the others still run
        result["status"] = f"ERROR {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        result["trace"] = traceback.format_exc().strip().splitlines()[-6:]
        traceback.print_exc()
    finally:
        _release(options.device)
    return result


def _measure_preset(cfg, options: Options, verdicts: Verdicts, report: Report) -> dict:
    built = build_preset(cfg, options.device, verdicts)
    for line in built.notices:
        report.notice(line)
    step = measure_steps(built, options.steps)
    eval_task = eval_seconds_per_task(built)
    test_sets = test_set_count(built.source)
    train, total = projected_seconds(cfg, test_sets, step.seconds_per_step, eval_task)
    return {
        "task_chunk": built.task_chunk,
        "seconds_per_step": step.seconds_per_step,
        "peak_gib": step.peak_bytes / GIB,
        "reserved_gib": None if step.reserved_bytes is None else step.reserved_bytes / GIB,
        "examples_per_task": step.examples_per_task,
        "eval_seconds_per_task": eval_task,
        "test_sets": test_sets,
        "projected_train_hours": train / 3600,
        "projected_total_hours": total / 3600,
        "status": "ok",
    }


def _memory_gib(device: torch.device) -> str:
    return f"{torch.cuda.get_device_properties(device).total_memory / GIB:.0f}" if device.type == "cuda" else "?"


def _release(device: torch.device) -> None:
    """Free what a preset left behind before the next one is built."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _same_step_as(reference: str, measured: dict | None, cfg) -> dict:
    """A preset whose step equals `reference`'s: its numbers, projected with this preset's step budget and evaluation."""
    result = {"status": f"same step as {reference}"}
    if not measured or not measured.get("status", "").startswith("ok"):
        return result
    result |= {
        key: measured[key]
        for key in ("data", "task_chunk", "seconds_per_step", "peak_gib", "reserved_gib", "examples_per_task")
    }
    train, total = projected_seconds(
        cfg, measured["test_sets"], measured["seconds_per_step"], measured["eval_seconds_per_task"]
    )
    return result | {"projected_train_hours": train / 3600, "projected_total_hours": total / 3600}


def _summary(result: dict) -> str:
    if result.get("seconds_per_step") is None:
        return f"{result['preset']}: {result['status']}"
    return (
        f"{result['preset']}: {result['seconds_per_step']:.3f} s/step, peak {result['peak_gib']:.2f} GiB, "
        f"projected {result.get('projected_total_hours', float('nan')):.1f} h ({result['status']})"
    )


def bench_part(run: BenchRun, budget: Budget, section: dict, report: Report) -> bool:
    """B1, B1b, B3, B5 (conml.benchmarks), each case's configurations as long as the budget lasts."""
    section["scale"] = (
        f"Sizes: {run.scale.name} (images {run.scale.image_size} px, meta-batches {run.scale.meta_batches}, shots {run.scale.shots}); "
        f"each implementation timed for at most {run.scale.max_seconds} s after {run.scale.warmup} warm-up iterations "
        "(`make bench` times longer). Ratios compare implementations on this device."
    )
    text, rows, failed = section.setdefault("text", []), section.setdefault("results", []), False
    cases = select_cases(BENCH_CASES)
    for done, case in enumerate(cases, 1):
        if budget.left() <= 0:
            text.append(f"{case.id}: not run (the part's time budget was spent)")
            continue
        for result in case.run(run):
            text += [*format_case(result).splitlines(), ""]
            rows.append(result.as_dict())
            failed |= not result.passed
            report.save()
        budget.progress(done, len(cases), f"{case.id} {'gates passed' if not failed else 'a gate FAILED'}")
    return failed
