"""Shared test helpers: compose the real config and run it small."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from conml.config import register

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TQDM_DISABLE", "1")
# The test models are tiny: one thread avoids oversubscribing small CI machines (10x slower otherwise).
torch.set_num_threads(1)
register()

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# Shrinks any run to a few steps on a few tasks, on the CPU, without W&B (configs/debug/tiny.yaml).
TINY = ["debug=tiny"]


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The composed train config, as `python -m conml.train <overrides>` would see it."""
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.fixture
def run_tiny(tmp_path):
    """run_tiny(overrides, name) -> (summary, run_dir): a few steps of a real run in a temp dir."""
    from conml.train import run

    def _run(overrides=(), name="run"):
        run_dir = tmp_path / name
        run_dir.mkdir(parents=True, exist_ok=True)
        summary = run(compose_config([*TINY, *overrides]), run_dir)
        return summary, run_dir

    return _run


@pytest.fixture
def unused_tcp_port() -> int:
    """A free loopback port for a local process group."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
