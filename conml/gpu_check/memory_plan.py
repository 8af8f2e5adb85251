"""`make memory-plan`: the peak memory of one meta-training step of every preset, planned on a CPU.

Method (stated again in docs/memory.md): each preset is built at its paper sizes on the CPU, on
synthetic episodes of the real shapes, and one meta-training step (the run's last meta-batch, so
curricula are at full size) is taken at meta-batch B = 2 and B = 3 while `LiveBytes` counts every
tensor storage torch holds; weights, buffers and optimizer state are added. A meta-batch's tensors
grow with its tasks, so peak(B) = fixed + B * per_task, fitted to the two points and read at the
preset's meta-batch. B = 1 lies off that line (a single task takes other code paths); it is
measured first, as a gauge of what fits: where B = 3 would not fit in half of this machine's
available memory, only B = 2 or B = 1 is measured and `fixed` is the weights and optimizer state
('proportional'). Presets whose episodes vary in size are measured at their largest episode
(Meta-Dataset: max ways, the whole support budget, max queries per class; same-different: the
largest support size).
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

from conml.benchmarks.suite import _git_commit
from conml.composer import Composer
from conml.data.images.cache import IMAGE_SIZE
from conml.data.images.synthetic import STANDARD
from conml.gpu_check.measure import GIB, state_bytes, step_peak_bytes
from conml.gpu_check.presets import (
    NOT_THE_STEP,
    TINY,
    build_preset,
    choose_data,
    preset_names,
    shrink,
    stand_in_pretrained,
    step_signature,
)
from conml.gpu_check.settings import Verdicts
from conml.tables.table_sweep import preset_overrides

# GPU sizes of the plan, and the memory each card reports (nvidia-smi's total, in GiB).
CARDS = {"24 GB": 24.0, "40 GB": 40.0, "80 GB": 79.6, "141 GB": 140.4}
# What a run needs beyond its tensors: the CUDA context and cuDNN workspaces (1 GiB), and the caching
# allocator's fragmentation (10 %). Both are allowances, to be replaced by `make gpu-check` measurements.
CONTEXT_GIB, FRAGMENTATION = 1.0, 1.10
# Meta-Dataset: ways at which tasks are measured (their memory per task is extrapolated to the largest episode).
SMALL_WAYS = (5, 10)
# With the largest episode fixed, the Meta-Dataset sources only change pixel values.
NOT_THE_PLAN = ("dataset.sources", "dataset.test_sources")


@dataclass
class Entry:
    preset: str
    meta_batch: int
    peaks: dict[str, int] = field(default_factory=dict)  # measured bytes at meta-batch 'B' (or 'B@<W>ways')
    fixed: float | None = None
    per_task: float | None = None
    method: str = ""
    seconds: float = 0.0
    check: dict | None = None  # a third measurement against the fit
    same_as: str | None = None
    error: str | None = None
    dataset_bytes: int = 0  # a dataset the run keeps on the GPU (dataset.preload), beside the step's peak
    inputs_per_task: float | None = None  # bytes of one task's inputs and labels in the meta-batch
    chunk_check: dict | None = None  # a measured chunked step against `chunked_peak`
    commit: str | None = None  # the code measured

    @property
    def peak(self) -> float | None:
        return None if self.per_task is None else self.fixed + self.meta_batch * self.per_task

    def chunked_peak(self, chunk: int, meta_batch: int | None = None) -> float:
        """Peak of a step in chunks of `chunk` tasks (`trainer.task_chunk`): one chunk's graph, every task's inputs."""
        meta_batch = meta_batch or self.meta_batch
        return self.fixed + chunk * (self.per_task - self.inputs_per_task) + meta_batch * self.inputs_per_task


def preloaded_bytes(cfg: DictConfig) -> int:
    """Bytes of a dataset that `dataset.preload` copies to the GPU: every split of miniImageNet or tieredImageNet, as uint8."""
    dataset = cfg.dataset
    if not dataset.get("preload") or dataset.get("name") not in STANDARD:
        return 0
    return sum(images for _, images in STANDARD[dataset.name].values()) * IMAGE_SIZE * IMAGE_SIZE * 3


def largest_episodes(cfg: DictConfig) -> None:
    """Fix variable-size training episodes at their largest, so the plan is the worst step of the run."""
    dataset = cfg.dataset
    with open_dict(cfg):
        if dataset._target_.endswith("MetaDataset"):
            # One source with enough classes and images in every split for that episode (sources only change pixels).
            dataset.sources, dataset.test_sources = ["ilsvrc_2012"], ["ilsvrc_2012"]
            ways = dataset.train_max_ways or dataset.max_ways
            support = dataset.train_max_support_set_size or dataset.max_support_set_size
            dataset.ways, dataset.queries = ways, dataset.max_num_query
            dataset.shots = min(support // ways, dataset.max_support_size_contrib_per_class)
        if "support_sizes" in dataset:
            dataset.support_sizes = [max(dataset.support_sizes)]


def available_bytes() -> int | None:
    """This machine's available memory (Linux), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def gib_needed(entry: Entry, chunk: int | None = None) -> float:
    """What a run of `entry` needs on a GPU: its step's peak (all tasks at once, or in chunks) with the
    allowances, and any preloaded dataset."""
    peak = entry.peak if chunk is None else entry.chunked_peak(chunk)
    return (FRAGMENTATION * peak + entry.dataset_bytes) / GIB + CONTEXT_GIB


def chunk_for(entry: Entry, card_gib: float) -> int | None:
    """The largest `trainer.task_chunk` whose step fits the card; None when not even one task fits."""
    if entry.inputs_per_task is None:
        return None
    fitting = [c for c in range(1, entry.meta_batch + 1) if gib_needed(entry, c) <= card_gib]
    return max(fitting) if fitting else None


class MemoryPlan:
    def __init__(self, out: Path, tiny: bool, check_below_seconds: float):
        self.out, self.tiny, self.check_below = out, tiny, check_below_seconds
        self.entries: list[Entry] = []
        self.kept: list[Entry] = []  # presets planned by an earlier run and not measured again now
        self.started = time.perf_counter()
        self.earlier = 0.0
        self.commit = (_git_commit() or "")[:10] or None

    def keep_earlier(self, names: list[str]) -> None:
        """Keep an earlier plan's entries for presets not in `names` (so some presets can be measured again)."""
        path = self.out.with_suffix(".json")
        if not path.exists():
            return
        record = json.loads(path.read_text())
        if record.get("tiny") == self.tiny:
            self.kept = [e for e in _entries(record) if e.preset not in names]
            self.earlier = record.get("seconds", 0.0)

    def run(self, names: list[str]) -> None:
        with Composer() as composer, tempfile.TemporaryDirectory() as scratch:
            first_with: dict[str, Entry] = {}
            for done, name in enumerate(names, 1):
                cfg = self._compose(composer, name, None)
                signature = step_signature(cfg, NOT_THE_STEP + NOT_THE_PLAN)
                entry = Entry(name, cfg.trainer.meta_batch_size, dataset_bytes=preloaded_bytes(cfg), commit=self.commit)
                if signature in first_with:
                    reference = first_with[signature]
                    entry = Entry(
                        **{
                            **asdict(reference),
                            "preset": name,
                            "same_as": reference.preset,
                            "seconds": 0.0,
                            "dataset_bytes": entry.dataset_bytes,
                        }
                    )
                else:
                    first_with[signature] = entry
                    self._measure(composer, entry, Path(scratch))
                self.entries.append(entry)
                self.write()
                print(
                    f"[memory-plan {time.perf_counter() - self.started:5.0f} s] {done}/{len(names)} {_line(entry)}",
                    flush=True,
                )

    def _compose(self, composer: Composer, name: str, meta_batch: int | None) -> DictConfig:
        overrides = [*preset_overrides(name), "device=cpu", "logger.mode=disabled"]
        cfg = composer(overrides + ([f"trainer.meta_batch_size={meta_batch}"] if meta_batch else []))
        if self.tiny:
            shrink(cfg, {k: v for k, v in TINY.items() if k != "trainer.meta_batch_size"})
        largest_episodes(cfg)
        return cfg

    def _peak(
        self,
        composer: Composer,
        name: str,
        meta_batch: int,
        scratch: Path,
        ways: int | None = None,
        chunk: int | None = None,
    ) -> tuple[int, int]:
        """(peak bytes, meta-batch bytes) of a step at `meta_batch` tasks (of `ways` ways; in chunks of `chunk`)."""
        cfg = self._compose(composer, name, meta_batch)
        with open_dict(cfg):
            if ways is not None:
                cfg.dataset.ways = ways
            cfg.trainer.task_chunk = chunk
        choose_data(cfg, "synthetic")
        stand_in_pretrained(cfg, scratch)
        built = build_preset(cfg, torch.device("cpu"), Verdicts({}))
        try:
            return step_peak_bytes(built)
        finally:
            del built
            gc.collect()

    def _measure(self, composer: Composer, entry: Entry, scratch: Path) -> None:
        """Peaks at B = 2 and 3 and the line through them, checked at B = 5 where that is cheap.

        B = 1 comes first, as a gauge: a larger meta-batch is measured only if it fits in half of
        this machine's available memory by that gauge (the machine may be shared). Meta-Dataset's
        largest episode (40 ways) is too large for that: its tasks are measured at 5 and 10 ways
        (the same images per class) and the memory per task is extrapolated linearly in the ways.
        """
        started = time.perf_counter()
        cfg = self._compose(composer, entry.preset, None)
        full_ways = cfg.dataset.ways if cfg.dataset._target_.endswith("MetaDataset") else None
        ways = None if full_ways is None else SMALL_WAYS[0]

        def peak(b: int, at: int | None = ways) -> int:
            key = str(b) if at is None else f"{b}@{at}ways"
            if key not in entry.peaks:
                entry.peaks[key], inputs = self._peak(composer, entry.preset, b, scratch, at)
                if at in (None, ways):
                    entry.inputs_per_task = inputs / b * ((full_ways or 1) / (ways or 1))  # inputs grow with the ways
            return entry.peaks[key]

        def fits(b: int, at: int | None = ways) -> bool:
            scale = 1.0 if at is None else at / ways
            return 1.1 * b * scale * peak(1) < 0.5 * (available_bytes() or float("inf"))

        try:
            if entry.meta_batch <= 3 and full_ways is None and fits(entry.meta_batch):
                entry.fixed, entry.per_task, entry.method = (
                    0,
                    peak(entry.meta_batch) / entry.meta_batch,
                    "measured at B",
                )
            elif fits(3):
                entry.per_task = peak(3) - peak(2)
                entry.fixed, entry.method = peak(2) - 2 * entry.per_task, "fit B=2,3"
            else:  # a larger meta-batch would not fit in this machine's memory
                largest = 2 if fits(2) else 1
                entry.fixed = self._state(composer, entry.preset, scratch)
                entry.per_task, entry.method = (peak(largest) - entry.fixed) / largest, f"B={largest}, proportional"
            if full_ways is not None and fits(2, SMALL_WAYS[1]):
                wider = (peak(2, SMALL_WAYS[1]) - entry.fixed) / 2
                entry.per_task += (wider - entry.per_task) / (SMALL_WAYS[1] - ways) * (full_ways - ways)
                entry.method += f" at {ways} ways; per task linear in ways ({ways}, {SMALL_WAYS[1]}) to {full_ways}"
            elif full_ways is not None:
                raise MemoryError(f"even {SMALL_WAYS[1]}-way tasks would not fit in half of this machine's memory")
            check = min(5, entry.meta_batch)
            if full_ways is None and check > 3 and fits(check) and time.perf_counter() - started < self.check_below:
                entry.check = {"meta_batch": check, "error": (entry.fixed + check * entry.per_task) / peak(check) - 1}
            if gib_needed(entry) > CARDS["80 GB"] and full_ways is None and fits(2):
                # What a chunked step holds, measured: 3 tasks in chunks of 2 (a chunk of one task is off the
                # line, as B = 1 is), against `chunked_peak`.
                measured, _ = self._peak(composer, entry.preset, 3, scratch, chunk=2)
                entry.peaks["3 in chunks of 2"] = measured
                entry.chunk_check = {"meta_batch": 3, "chunk": 2, "error": entry.chunked_peak(2, 3) / measured - 1}
        except Exception as error:  # noqa: BLE001 - one preset's failure is reported, the others still run
            entry.error = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        entry.seconds = time.perf_counter() - started

    def _state(self, composer: Composer, name: str, scratch: Path) -> int:
        """Bytes of weights, buffers and optimizer state alone (after one optimizer step on zero gradients)."""
        cfg = self._compose(composer, name, 1)
        with open_dict(cfg):
            cfg.trainer.task_chunk = None
        choose_data(cfg, "synthetic")
        stand_in_pretrained(cfg, scratch)
        built = build_preset(cfg, torch.device("cpu"), Verdicts({}))
        for p in built.learner.parameters():
            if p.requires_grad:
                p.grad = torch.zeros_like(p)
        built.optimizer.step()
        return state_bytes(built)

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        entries = sorted(self.kept + self.entries, key=lambda e: e.preset)
        seconds = self.earlier + time.perf_counter() - self.started
        record = {
            "torch": torch.__version__,
            "tiny": self.tiny,
            "seconds": seconds,
            "entries": [asdict(e) for e in entries],
        }
        self.out.with_suffix(".json").write_text(json.dumps(record, indent=1))
        write_markdown(self.out, record)


def write_markdown(out: Path, record: dict) -> None:
    """docs/memory.md from the measurements (and any GPU reports beside it, in docs/gpu/)."""
    out.write_text(
        render(_entries(record), record["tiny"], record["seconds"], record["torch"], gpu_reports(out.parent / "gpu"))
    )


def _entries(record: dict) -> list[Entry]:
    return [Entry(**e) for e in record["entries"]]


def gpu_reports(folder: Path) -> dict[str, dict[str, float]]:
    """Peak GiB per preset measured by `make gpu-check` at paper sizes, per device report in `folder`."""
    measured = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if report.get("environment", {}).get("mode") != "paper sizes":
            continue
        rows = report.get("parts", {}).get("presets", {}).get("results", [])
        measured[report["environment"].get("device_name", path.stem)] = {
            r["preset"]: r["peak_gib"] for r in rows if r.get("peak_gib") is not None
        }
    return measured


def _line(entry: Entry) -> str:
    if entry.error:
        return f"{entry.preset}: ERROR {entry.error}"
    how = f"same step as {entry.same_as}" if entry.same_as else f"{entry.method}, {entry.seconds:.0f} s"
    return f"{entry.preset}: B={entry.meta_batch}: {entry.peak / GIB:.2f} GiB ({entry.per_task / 2**20:.0f} MiB per task; {how})"


def _summary(entries: list[Entry]) -> list[str]:
    """Which presets do not fit which cards, in words."""
    planned = [e for e in entries if not e.error]
    lines = [f"**Summary.** {len(planned)} of {len(entries)} presets planned."]
    for card, gib in CARDS.items():
        too_big = [e.preset for e in planned if gib_needed(e) > gib]
        if not too_big:
            lines.append(f"All fit {card}.")
        elif len(too_big) > 12:
            lines.append(f"{len(too_big)} do not fit {card}.")
        else:
            lines.append(f"Not on {card}: {', '.join(too_big)}.")
    unchunked = [e for e in planned if gib_needed(e) > CARDS["80 GB"]]
    if unchunked:
        still = [e.preset for e in unchunked if chunk_for(e, CARDS["80 GB"]) is None]
        lines.append(
            f"With `trainer.task_chunk`, {len(unchunked) - len(still)} of the {len(unchunked)} that do not fit 80 GB whole do"
            + (f"; not planned or not even one task: {', '.join(still)}." if still else ".")
        )
    return [" ".join(lines), ""]


def _chunked(entry: Entry) -> str:
    """The task_chunk an 80 GB card needs and that step's planned peak; '-' where the whole meta-batch fits."""
    if gib_needed(entry) <= CARDS["80 GB"]:
        return "-"
    chunk = chunk_for(entry, CARDS["80 GB"])
    if chunk is None:
        return "not planned" if entry.inputs_per_task is None else "**none fits**"
    check = f" (check {entry.chunk_check['error']:+.1%})" if entry.chunk_check else ""
    return f"task_chunk={chunk}: {entry.chunked_peak(chunk) / GIB:.1f} GiB{check}"


def render(
    entries: list[Entry], tiny: bool, seconds: float, torch_version: str, measured: dict[str, dict[str, float]]
) -> str:
    cards = " | ".join(f"fits {c}" for c in CARDS)
    devices = list(measured)
    lines = [
        "# Memory plan: peak memory of one meta-training step, every preset",
        "",
        "Written by `make memory-plan`"
        + (" (--tiny: tiny sizes, a check of the command, not a plan)" if tiny else "")
        + f"; its measurements took {seconds / 60:.0f} min on a CPU in all (torch {torch_version}, code of commit "
        + ", ".join(sorted({e.commit or "unknown" for e in entries}))
        + "). No GPU was used.",
        "",
        "**Method.** Each preset is built at its paper sizes on the CPU, on synthetic episodes of the real shapes "
        "(`dataset.synthetic=true`; random weights stand in for a missing pretrained network). One meta-training step "
        "(the run's last meta-batch, so curricula are at full size) is taken at meta-batch B = 2 and B = 3 while every "
        "tensor storage torch allocates and frees is counted (`conml/gpu_check/measure.py`, `LiveBytes`), and weights, "
        "buffers and optimizer state are added. A meta-batch's tensors grow with its tasks, so "
        "peak(B) = fixed + B x per-task is fitted to the two points and read at the preset's meta-batch (B = 1 lies off "
        "that line: a single task takes other code paths); where B = 5 was cheap enough to measure too, the fit's "
        "error there is given ('B=5: fit +0.0%'). 'proportional': B = 3 would not fit in half of the planning machine's "
        "memory, so only B = 2 or B = 1 was measured and `fixed` is the weights and optimizer state (B = 1 may "
        "understate the per-task memory of larger meta-batches). Presets with variable episodes are "
        "measured at their largest episode (same-different: support size 10; Meta-Dataset: 40 ways x (10 support + 10 "
        "query) images, the training limits of the presets, too large to measure on the planning machine: its tasks are "
        "measured at 5 and 10 ways with the same images per class, and the memory per task is extrapolated linearly in "
        "the ways).",
        "",
        "**Fits.** A preset fits a card when 1.1 x peak + its dataset on the GPU + 1 GiB is at most the memory the card "
        "reports ("
        + ", ".join(f"{c}: {g} GiB" for c, g in CARDS.items())
        + "). The 1 GiB stands for the CUDA context and cuDNN workspaces, the 10 % for the caching allocator's "
        "fragmentation: allowances, not measurements. 'dataset GiB' is what `dataset.preload=true` (the default) keeps on "
        "the GPU for miniImageNet and tieredImageNet, every split as uint8. The CPU count leaves out what a GPU adds (cuDNN may keep other "
        "intermediates than the CPU kernels); `make gpu-check` measures the real peak on a GPU"
        + (f", shown beside the plan for {', '.join(devices)}." if devices else "; no GPU report was found yet."),
        "",
        *_summary(entries),
        "**Chunking.** `trainer.task_chunk=c` builds the graphs of c tasks at a time for the same meta-gradient "
        "(`conml/task_chunks.py`). Its peak is planned as fixed + c x (per task - inputs per task) + B x inputs per task: "
        "every task's inputs stay, one chunk's graph at a time (each chunk's pass without a graph holds less). For the "
        "presets that do not fit an 80 GB card whole, the last column but one gives the largest chunk that does and that "
        "step's planned peak; 'check' is that formula against a measured step of 3 tasks in chunks of 2 (a chunk of one "
        "task is off the line, as B = 1 is; the formula counts copies a task makes of its inputs, such as support and "
        "query joined, as graph memory, so it may state a little more than a chunked step holds). "
        "`trainer.task_chunk=auto` chooses the chunk on the GPU itself.",
        "",
        f"| preset | B | fixed MiB | per task MiB | peak GiB at B | dataset GiB | {cards} | "
        + "".join(f"measured on {d} GiB | " for d in devices)
        + "chunked on 80 GB | method |",
        "|---|---|---|---|---|---|" + "---|" * len(CARDS) + "---|" * len(devices) + "---|---|",
    ]
    for e in entries:
        if e.error:
            lines.append(
                f"| {e.preset} | {e.meta_batch} | | | | | "
                + "| " * len(CARDS)
                + "| " * len(devices)
                + f"| ERROR {e.error} |"
            )
            continue
        fits = " | ".join("yes" if gib_needed(e) <= g else "**no**" for g in CARDS.values())
        gpu = "".join(
            ("-" if measured[d].get(e.preset) is None else f"{measured[d][e.preset]:.2f}") + " | " for d in devices
        )
        how = (
            f"= {e.same_as}"
            if e.same_as
            else e.method + (f"; B={e.check['meta_batch']}: fit {e.check['error']:+.1%}" if e.check else "")
        )
        lines.append(
            f"| {e.preset} | {e.meta_batch} | {e.fixed / 2**20:.0f} | {e.per_task / 2**20:.1f} | {e.peak / GIB:.2f} | {e.dataset_bytes / GIB:.1f} | {fits} | {gpu}"
            f"{_chunked(e)} | {how} |"
        )
    return "\n".join(lines) + "\n"


def plan(out: Path, patterns: list[str] | None, tiny: bool, check_below_seconds: float) -> list[Entry]:
    memory_plan = MemoryPlan(out, tiny, check_below_seconds)
    names = preset_names(patterns)
    memory_plan.keep_earlier(names)
    memory_plan.run(names)
    return memory_plan.entries
