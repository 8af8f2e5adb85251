"""configs/experiment/ holds only what can be selected as `experiment=...`; shared parts live in
configs/experiment_parts/, which protocols include and nothing selects directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import compose_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted(
    p.relative_to(CONFIGS / "experiment").with_suffix("").as_posix() for p in (CONFIGS / "experiment").rglob("*.yaml")
)
PARTS = sorted(
    p.relative_to(CONFIGS / "experiment_parts").with_suffix("").as_posix()
    for p in (CONFIGS / "experiment_parts").rglob("*.yaml")
)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_file_composes_as_a_named_run(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    assert cfg.name and cfg.name != "default", f"experiment={experiment} names no run"


@pytest.mark.parametrize("part", PARTS)
def test_every_shared_part_is_included_by_some_experiment(part):
    texts = [p.read_text() for p in (CONFIGS / "experiment").rglob("*.yaml")]
    assert any(f"/experiment_parts/{part}" in text for text in texts), f"configs/experiment_parts/{part}.yaml is unused"
