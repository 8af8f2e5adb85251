"""Every table target end to end in smoke mode: the Hydra multirun over all its presets (tiny data, two
steps), then the aggregation, so that neither the presets nor the table code can rot unnoticed."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conml.tables.cli import main
from tests.images_fixture import prepared_datasets
from tests.net_settings import configured_net


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Tiny models run fastest on one thread (the multirun's jobs inherit OMP_NUM_THREADS), above all on a shared machine."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def image_data(tmp_path_factory):
    """Tiny miniImageNet / tieredImageNet at the presets' 84 px, and stand-in Simple CNAPs backbones."""
    data = prepared_datasets(tmp_path_factory.mktemp("images"), 84)
    (data / "pretrained").mkdir()
    for name in ("pretrained_resnet_mini_imagenet.pt.tar", "pretrained_resnet_tiered_imagenet.pt.tar"):
        torch.save(
            {"resnet_dict": configured_net("resnet18_film", pretrained=None, frozen=False).state_dict()},
            data / "pretrained" / name,
        )
    return data


def smoke(name: str, tmp_path, seed: int, *overrides: str) -> tuple[dict, list[dict]]:
    """Run `scripts/table.py run <name> --smoke`; the table's JSON and its entries."""
    out = tmp_path / "table"
    status = main(
        [
            "run",
            name,
            "--smoke",
            "--seeds",
            str(seed),
            "--out",
            str(out),
            f"paths.output_dir={tmp_path / 'outputs'}",
            *overrides,
        ]
    )
    assert status == 0
    table = json.loads((out / f"{name}.json").read_text())
    return table, table["entries"]


def measured(entry: dict) -> bool:
    """A value came out of the runs (a NaN shot spare, 'never reached', counts as measured)."""
    return all(v is not None for v in entry["ours"]["per_seed"].values())


def test_table2_smoke_fills_every_cell_and_draws_the_figures(tmp_path):
    table, entries = smoke("table2", tmp_path, 0)
    # 4 rows with 5- and 10-shot runs, 2 ablations (10-shot); ConML rows add the gradient share;
    # the 4 main rows at 5 and 10 test-time inner steps (5- and 10-shot), and at 10 steps with 20 and 50 test
    # shots; each ConML row minus MAML at 10 steps (5- and 10-shot, and the 10-shot runs at 20 test shots).
    assert len(entries) == 7 + 3 * 9 + 2 * 7 + 4 * (2 * 2 + 2) + 3 * 3 and all(measured(e) for e in entries)
    retested = {e["method"] for e in entries if "inner steps at test" in e["method"]}
    assert "ConML-MAML − MAML, 10 inner steps at test" in retested and "ConML-MAML, 10 inner steps at test" in retested
    assert "over seeds [0]" in table["caption"] and "iterations per run: 2" in table["caption"]
    for figure in ("representations", "distances", "mse_by_shots", "mse_by_amplitude_shift"):
        assert (tmp_path / "table" / f"table2_{figure}.png").stat().st_size > 10_000


def test_table2_lambda_smoke_sweeps_lambda(tmp_path):
    table, entries = smoke("table2_lambda", tmp_path, 0)
    assert len(entries) == 2 * 4 and all(measured(e) for e in entries)
    assert "Trained with `python scripts/table.py run table2_lambda --seeds 0 trainer.steps=2`" in table["caption"]
    assert "conml.lam in {0.01,0.1,1,10}" in table["caption"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["table3", "table4"])
def test_image_table_smoke(name, image_data, tmp_path):
    _, entries = smoke(name, tmp_path, 0, f"paths.data_dir={image_data}")
    assert {e["method"] for e in entries} == {"MAML", "FOMAML", "Reptile", "MatchingNet", "ProtoNet", "Simple CNAPs"}
    assert len(entries) == 6 * 6 and all(measured(e) for e in entries)


def test_table5_smoke(tmp_path):
    _, entries = smoke("table5", tmp_path, 0)
    assert len(entries) == 8 and all(measured(e) for e in entries)
    assert all(e["ours"]["mean"] > 0 for e in entries if e["metric"].startswith("Rel. Min. Error"))
    assert (tmp_path / "table" / "table5_linear_regression_curves.png").exists()


@pytest.mark.slow
def test_samediff_smoke(tmp_path):
    _, entries = smoke("samediff", tmp_path, 42)
    found = {(e["method"], e["metric"]): measured(e) for e in entries}
    assert len(found) == 11 * 6
    tested = {key: value for key, value in found.items() if key[0] in ("Average", "lines", "arrows")}
    assert len(tested) == 18 and all(tested.values()), "the smoke runs test lines and arrows"
    assert not any(value for key, value in found.items() if key not in tested), (
        "tasks that were not run show as missing"
    )
    assert all(0.0 <= e["ours"]["mean"] <= 100.0 for e in entries if e["ours"]["mean"] is not None)


def test_samediff_order_smoke(tmp_path):
    _, entries = smoke("samediff_order", tmp_path, 42)
    assert len(entries) == 10 and all(measured(e) for e in entries)


def test_samediff_loo_smoke(tmp_path):
    _, entries = smoke("samediff_loo", tmp_path, 42)
    found = {e["method"]: measured(e) for e in entries}
    assert found.pop("lines") and found.pop("arrows"), "the smoke sweep holds out lines and arrows"
    assert not any(found.values()), "held-out tasks that were not run show as missing"
    assert all(not math.isnan(e["ours"]["mean"]) for e in entries if e["ours"]["mean"] is not None)


@pytest.mark.slow
def test_metadataset_smoke(tmp_path):
    """Synthetic sources with the real class splits: both training settings, plain and ConML, every test source."""
    _, entries = smoke("metadataset", tmp_path, 0)
    assert len(entries) == 11 * 2 * 3 and all(measured(e) for e in entries)
