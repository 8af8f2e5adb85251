"""The montage and weight-space PCA scripts produce their figures from real inputs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from conml.learners.conventional import Conventional
from conml.learners.maml import MAML
from conml.tables.table_sweep import every_sweep_cell
from conml.task_kind import CLASSIFICATION
from scripts import weight_space_pca as pca_script
from scripts.montage_same_different import montage
from scripts.weight_space_pca import principal_components, weight_space_pca
from tests.conftest import CONFIGS, compose_config
from tests.learner_settings import configured
from tests.net_settings import configured_net, net_config

# Kim et al.'s Conv6 shrunk to two conv layers of 2 filters and fully connected layers of 8 units.
TINY_MODEL = {"channels": [2, 2], "fc_units": 8}


def test_montage_shows_same_and_different_examples_per_task(tmp_path):
    out = tmp_path / "montage.png"
    montage(["lines", "arrows"], per_label=2, seed=0, out=out)
    width, height = Image.open(out).size
    assert width > 4 * 128 and height > 2 * 128


def test_principal_components_match_an_svd():
    data = torch.randn(7, 50, generator=torch.Generator().manual_seed(0)) * torch.linspace(3, 0.1, 50)
    scores, ratios = principal_components(data)
    centred = (data - data.mean(0)).double().numpy()
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    expected = u[:, :2] * s[:2]
    assert np.allclose(np.abs(scores.numpy()), np.abs(expected), atol=1e-6)
    assert np.allclose(ratios.numpy(), s[:2] ** 2 / (s**2).sum())


def fake_run(path, learner: str, seed: int):
    """A run folder with a checkpoint in the trainer's format."""
    torch.manual_seed(seed)
    net = configured_net("kim_conv6", **TINY_MODEL)
    learner = configured(learner, net, CLASSIFICATION)
    (path / "checkpoints").mkdir(parents=True)
    torch.save(
        {
            "learner": learner.state_dict(),
            "config": {"model": OmegaConf.to_container(net_config("kim_conv6", **TINY_MODEL))},
        },
        path / "checkpoints" / "best.pt",
    )
    return path


def test_weight_space_pca_places_every_network_in_the_plot(tmp_path):
    groups = {
        "MAML": [fake_run(tmp_path / f"maml{s}", "maml", s) for s in range(3)],
        "conventional": [fake_run(tmp_path / f"conv{s}", "conventional", 10 + s) for s in range(2)],
    }
    out = tmp_path / "pca.png"
    result = weight_space_pca(groups, random=2, out=out)
    assert out.exists()
    assert result["labels"] == ["MAML"] * 3 + ["conventional"] * 2 + ["random init"] * 2
    assert np.array(result["pc"]).shape == (7, 2)
    assert json.loads(out.with_suffix(".json").read_text())["labels"] == result["labels"]


def test_weight_space_pca_usage_names_existing_presets_and_composes():
    commands = re.findall(r"conml\.train (\S+=\S+(?: \S+)*)", pca_script.__doc__)
    globbed = set(re.findall(r"outputs/([\w-]+)/\*/", pca_script.__doc__))
    assert commands and globbed, "the usage shows how to make the runs and which folders to read"
    for command in commands:
        assert compose_config(command.split()).name in globbed
    assert all(name in every_sweep_cell() or (CONFIGS / "experiment" / f"{name}.yaml").is_file() for name in globbed)


@pytest.mark.slow
def test_episode_diff_of_a_checkout_against_itself_finds_no_difference(capsys):
    from scripts.same_different_episode_diff import HERE, main

    main([str(HERE), str(HERE)])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "task" not in line]
    assert len(rows) == 10 and all(row.endswith("| 0 | 0.00 % |") for row in rows)
