"""Train configs composed as the entrypoint composes them, many in one Hydra initialisation: for the tables'
protocol check (conml/tables/provenance.py) and the GPU check's presets (conml/gpu_check/presets.py)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from conml.config import register

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class Composer:
    """Composes train configs as the entrypoint does; one Hydra initialisation for many presets."""

    def __enter__(self) -> Composer:
        register()
        GlobalHydra.instance().clear()
        self._context = initialize_config_dir(str(CONFIGS), version_base="1.3")
        self._context.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._context.__exit__(*exc)

    def __call__(self, overrides: list[str]) -> DictConfig:
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # the name interpolates ${hydra:runtime.choices...}
        with open_dict(cfg):
            del cfg["hydra"]
        # Resolved now: Hydra's runtime is global, and a config kept while others are composed would
        # otherwise read their choices (a cell's name and tags would follow the last preset composed).
        cfg.name = cfg.name
        cfg.logger.tags = list(cfg.logger.tags)
        return cfg
