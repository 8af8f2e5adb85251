"""An exported results.json holds no folder of the machine the run was trained on."""

from __future__ import annotations

import json

from conml.tables.portable import portable_results


def results(data_dir: str, output_dir: str = "outputs") -> str:
    config = {
        "dataset": {"root": f"{data_dir}/omniglot/vinyals", "name": "omniglot"},
        "model": {"pretrained": f"{data_dir}/pretrained/x.pt", "note": "/elsewhere/kept"},
        "paths": {"data_dir": data_dir, "output_dir": output_dir},
    }
    return json.dumps({"name": "omniglot-maml-5way-1shot-plain", "config": config}, indent=2) + "\n"


def test_absolute_data_and_output_folders_become_tokens():
    text = portable_results(results("/home/someone/data", "/scratch/outputs"))
    config = json.loads(text)["config"]
    assert config["paths"] == {"data_dir": "<data_dir>", "output_dir": "<output_dir>"}
    assert config["dataset"]["root"] == "<data_dir>/omniglot/vinyals"
    assert config["model"]["pretrained"] == "<data_dir>/pretrained/x.pt"
    assert config["model"]["note"] == "/elsewhere/kept", "only paths below the run's own folders change"
    assert "/home/someone" not in text and "/scratch" not in text and text.endswith("\n")


def test_a_results_file_with_relative_folders_is_unchanged_byte_for_byte():
    original = results("data")
    assert portable_results(original) == original
