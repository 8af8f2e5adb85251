"""`make gpu-check` in its CPU mode (tiny sizes), the pieces it is built from, and `make memory-plan`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conml.benchmarks.maml_peers import ProjectMAML
from conml.benchmarks.setups import MAMLSetup, network, synthetic_batch
from conml.benchmarks.timing import peak_memory_mb
from conml.composer import Composer
from conml.data.images.synthetic import STANDARD, SyntheticImages
from conml.data.metadataset.source import ALL_SOURCES
from conml.data.metadataset.synthetic import SOURCES
from conml.gpu_check.budget import Budget
from conml.gpu_check.measure import LiveBytes
from conml.gpu_check.memory_plan import largest_episodes, plan
from conml.gpu_check.presets import step_signature
from conml.gpu_check.settings import Verdicts, check_settings
from conml.performance import PerformanceSettings, Precision
from conml.tables.table_sweep import preset_overrides
from tests.conftest import compose_config
from tests.dataset_settings import source as configured

ROOT = Path(__file__).resolve().parents[2]


def test_make_gpu_check_runs_on_the_cpu_at_tiny_sizes(tmp_path):
    """The command a GPU node runs (without uv: PYTHON=...), end to end, every part. The budget is a cap, not a
    duration: --tiny's default of 300 s is split between the parts, and a CPU shared with other work (a training
    run beside the suite) can take longer than its share for the tests part, so this test gives it room."""
    args = f"ARGS=--device cpu --tiny --budget 1500 --out {tmp_path}"
    command = ["make", "-s", "gpu-check", f"PYTHON={sys.executable}", args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [report] = tmp_path.glob("*-tiny.json")
    data = json.loads(report.read_text())
    assert data["status"] == "passed" and list(data["parts"]) == ["settings", "tests", "presets", "bench"]
    assert report.with_suffix(".md").read_text().startswith("# GPU check")
    assert data["parts"]["settings"]["gates"][0] == data["parts"]["settings"]["gates"][0] | {
        "setting": "float32",
        "verdict": "pass",
    }
    tests = data["parts"]["tests"]
    assert tests["exit_code"] == 0 and tests["counts"].get("passed", 0) >= 15 and set(tests["counts"]) == {"passed"}
    presets = {r["preset"]: r for r in data["parts"]["presets"]["results"]}
    assert all(r["status"] == "ok" or r["status"].startswith("same step as") for r in presets.values()), presets
    assert presets["tieredimagenet-maml-1shot-conml"]["status"] == "same step as miniimagenet-maml-1shot-conml"
    assert presets["miniimagenet-maml-1shot-conml"]["data"] == "synthetic"
    assert all(
        r["peak_gib"] > 0 and r["projected_total_hours"] >= r["projected_train_hours"] > 0 for r in presets.values()
    )
    assert {r["case"] for r in data["parts"]["bench"]["results"]} == {"B1", "B1b", "B3", "B5"}
    assert all(r["gates_passed"] for r in data["parts"]["bench"]["results"])


def test_an_unknown_preset_is_refused(tmp_path):
    command = [
        sys.executable,
        "scripts/gpu_check.py",
        "--device",
        "cpu",
        "--tiny",
        "--parts",
        "presets",
        "--presets",
        "table9_*",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no experiment preset matches ['table9_*']" in done.stderr


def test_a_failed_gate_switches_its_setting_off_with_a_notice():
    verdicts = Verdicts({"float32": True, "tf32": True, "bf16": False, "channels_last": False})
    settings, notices = verdicts.gate(PerformanceSettings(precision=Precision.bf16, channels_last=True))
    assert settings == PerformanceSettings(precision=Precision.tf32, channels_last=False)
    assert notices == [
        "performance.precision=bf16 failed its gate on this device: switched to tf32",
        "performance.channels_last=true failed its gate on this device: switched off",
    ]
    settings, notices = Verdicts({"tf32": False}).gate(PerformanceSettings())
    assert settings.precision == Precision.float32 and len(notices) == 1
    assert Verdicts({}).gate(PerformanceSettings(precision=Precision.bf16)) == (
        PerformanceSettings(precision=Precision.bf16),
        [],
    )
    icl = compose_config(["experiment=icl/toy", "dataset=linear_regression", "conml=icl"])
    assert Verdicts({"bf16": True}).gate_learner(icl) == [] and icl.learner.mixed_precision
    assert len(Verdicts({"bf16": False}).gate_learner(icl)) == 1 and not icl.learner.mixed_precision


def test_on_a_cpu_only_float32_is_gated():
    rows, verdicts = check_settings(torch.device("cpu"))
    assert rows[0]["setting"] == "float32" and rows[0]["verdict"] == "pass" and verdicts.passed == {}
    assert all(row["verdict"].startswith("not applicable") for row in rows[1:])


def test_live_bytes_agree_with_the_profilers_memory_timeline():
    """The memory plan's counter against torch's profiler on the same MAML + ConML meta-gradient."""
    setup = MAMLSetup(tasks=3, shots=1, queries=3, image_size=16, hidden=8, inner_steps=2, conml=True)
    implementation = ProjectMAML(network(setup), setup)
    batch = synthetic_batch(setup, torch.device("cpu"))

    def step():
        implementation.module.zero_grad(set_to_none=True)
        implementation.backward(batch)

    step()
    profiled = peak_memory_mb(step, torch.device("cpu"))
    with LiveBytes() as tracker:
        step()
    assert abs(tracker.peak / 2**20 - profiled) <= 0.05 * profiled  # measured: 1-3 % apart


def test_budget_deadlines_are_cumulative():
    budget = Budget(100.0, {"a": 0.2, "b": 0.3, "c": 0.5})
    assert [budget.deadline(p) for p in "abc"] == [20.0, 50.0, 100.0]
    budget.begin("b")
    assert 49.0 < budget.left() <= 50.0


def synthetic_tiered(root: str, **settings):
    """dataset=tieredimagenet on synthetic images, read from the host (no preload), with `settings` changed."""
    return configured("tieredimagenet", root=root, synthetic=True, preload=False, **settings)


def test_synthetic_images_have_the_real_splits_and_are_seeded():
    source = synthetic_tiered("no/such/folder", ways=5, shots=1, queries=3, seed=7)
    for split, (classes, images) in STANDARD["tieredimagenet"].items():
        assert len(source.splits[split].counts) == classes and source.splits[split].counts.sum() == images
    batch = source.sample("test", 3, 2)
    again = synthetic_tiered("elsewhere", ways=5, shots=1, queries=3, seed=7).sample("test", 4, 1)
    assert batch.support.x.dtype == torch.float32 and batch.support.x.shape == (2, 5, 3, 84, 84)
    assert torch.equal(batch.support.x[1:], again.support.x)
    assert not torch.equal(
        synthetic_tiered("x", seed=8).sample("test", 4, 1).support.x,
        again.support.x[:, :1],
    )
    # Images of one class share a colour: classes can be told apart.
    pixels = source.splits["train"].images[np.arange(0, 3)]
    other = source.splits["train"].images[np.array([2000])]
    assert pixels.dtype == np.uint8 and pixels.shape == (3, 84, 84, 3)
    assert (
        np.abs(pixels.mean((1, 2)) - pixels.mean((0, 1, 2))).max()
        < 4
        < np.abs(other.mean((1, 2)) - pixels.mean((0, 1, 2))).max()
    )


def test_synthetic_images_index_alike_from_numpy_and_from_the_device():
    images = SyntheticImages(np.array([3, 4, 5]), 8, seed=0)
    rows = np.array([0, 4, 11, 7])
    assert np.array_equal(images[rows], images.to("cpu")[torch.from_numpy(rows)].numpy())


def test_synthetic_metadataset_has_the_real_class_splits():
    assert set(SOURCES) == set(ALL_SOURCES)
    source = configured(
        "metadataset",
        root="no/such/folder",
        sources=["ilsvrc_2012", "omniglot"],
        test_sources=["traffic_sign"],
        synthetic=True,
    )
    assert [len(source.caches["omniglot"].split_classes[s]) for s in ("train", "val", "test")] == [883, 81, 659]
    assert len(source.caches["traffic_sign"].split_classes["test"]) == 43
    batch = source.sample("train", 0, 4)
    assert batch.support.x.shape[0] == 4 and 5 <= int(batch.info["ways"].min())


def test_synthetic_data_is_a_setting_and_never_the_default():
    for dataset in ("miniimagenet", "tieredimagenet", "metadataset"):
        assert compose_config([f"dataset={dataset}"]).dataset.synthetic is False
    cfg = compose_config([*preset_overrides("miniimagenet-protonet-1shot-conml"), "dataset.synthetic=true"])
    assert cfg.dataset.synthetic is True


def test_presets_that_differ_only_in_their_dataset_take_the_same_step():
    with Composer() as compose:
        mini, tiered, five = (
            compose(preset_overrides(name))
            for name in (
                "miniimagenet-maml-1shot-conml",
                "tieredimagenet-maml-1shot-conml",
                "miniimagenet-maml-5shot-conml",
            )
        )
        assert step_signature(mini) == step_signature(tiered) != step_signature(five)
        metadataset = compose(preset_overrides("metadataset-simple_cnaps-conml"))
    largest_episodes(metadataset)
    assert (metadataset.dataset.ways, metadataset.dataset.shots, metadataset.dataset.queries) == (40, 10, 10)
    assert list(metadataset.dataset.sources) == ["ilsvrc_2012"]


def test_memory_plan_at_tiny_sizes(tmp_path):
    out = tmp_path / "memory.md"
    names = [
        "miniimagenet-protonet-1shot-conml",
        "tieredimagenet-protonet-1shot-conml",
        "sinusoid-maml-5shot-conml",
        "metadataset-simple_cnaps-conml",
    ]
    entries = {e.preset: e for e in plan(out, names, tiny=True, check_below_seconds=60.0)}
    protonet, tiered = entries[names[0]], entries[names[1]]
    assert protonet.method == "fit B=2,3" and protonet.meta_batch == 32 and protonet.per_task > 0
    assert abs(protonet.check["error"]) < 0.01, "peak memory is not linear in the meta-batch"
    assert tiered.same_as == protonet.preset and tiered.peak == protonet.peak
    assert "per task linear in ways (5, 10)" in entries[names[3]].method and {"2@5ways", "3@5ways", "2@10ways"} <= set(
        entries[names[3]].peaks
    )
    text = out.read_text()
    assert "| miniimagenet-protonet-1shot-conml | 32 |" in text and "tiny sizes" in text
    assert [e["preset"] for e in json.loads(out.with_suffix(".json").read_text())["entries"]] == sorted(names)
    # Measuring some presets again keeps the others' entries.
    again = plan(out, [names[2]], tiny=True, check_below_seconds=0.0)
    assert [e.preset for e in again] == [names[2]] and names[0] in out.read_text()


def test_the_plan_of_a_chunked_step_matches_a_measured_one(tmp_path, monkeypatch):
    """A card so small that nothing fits whole: the plan measures 3 tasks in chunks of 2 against its formula."""
    from conml.gpu_check import memory_plan

    monkeypatch.setitem(memory_plan.CARDS, "80 GB", 1.0)  # GiB: the 1 GiB allowance alone
    [entry] = plan(tmp_path / "memory.md", ["miniimagenet-protonet-1shot-conml"], tiny=True, check_below_seconds=0.0)
    assert entry.inputs_per_task > 0 and entry.chunk_check["chunk"] == 2
    # The plan may over-state a chunked step a little (copies of a task's inputs count as per-task memory), never under-state it.
    assert -0.01 < entry.chunk_check["error"] < 0.10, entry.chunk_check
    assert entry.chunked_peak(1) < entry.chunked_peak(2) < entry.peak
    assert "chunked on 80 GB" in (tmp_path / "memory.md").read_text()


def test_a_preset_out_of_memory_is_measured_again_in_task_chunks(tmp_path, monkeypatch):
    """What a GPU too small for a whole meta-batch (ProtoNet's 30-way B = 32 on 80 GB) gets: task_chunk=auto."""
    from conml.gpu_check import check

    chunks = []

    def measure(cfg, options, verdicts, report):
        chunks.append(cfg.trainer.task_chunk)
        if cfg.trainer.task_chunk is None:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")
        return {"task_chunk": 21, "status": "ok"}

    monkeypatch.setattr(check, "_measure_preset", measure)
    options = check.Options(torch.device("cpu"), True, tmp_path, 60.0, ["presets"], None, "synthetic", 1)
    with Composer() as compose:
        cfg = compose([*preset_overrides("miniimagenet-protonet-1shot-conml"), "device=cpu"])
    report = check.Report(tmp_path, "report", {})
    result = check._run_preset("miniimagenet-protonet-1shot-conml", cfg, options, Verdicts({}), tmp_path, report)
    assert (
        chunks == [None, "auto"]
        and result["status"] == "ok with task_chunk=21 (the whole meta-batch ran out of memory)"
    )
