"""The experiment presets as the check runs them: composed, optionally shrunk, built, and stepped.

A preset (a table sweep's cell, or a preset file) is composed exactly as `python -m conml.train`
composes it with the preset's overrides. Datasets that are not prepared are replaced by seeded
synthetic episodes of the real shapes (`dataset.synthetic=true`), and a pretrained network that is missing by randomly initialised
weights of the same architecture (memory and time do not depend on the values). One step here is
one step of `Trainer.fit`: the meta-batch the trainer would draw, its meta-gradient (in task chunks
where `trainer.task_chunk` asks for them), gradient clipping, the optimizer and scheduler steps
(logging, validation and checkpoints are left out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from conml.build import build, build_source_and_learner
from conml.checkpoint import seed_everything
from conml.composer import CONFIGS
from conml.data.prefetch import MetaBatches
from conml.errors import DataError
from conml.gpu_check.settings import Verdicts
from conml.memory_plan import auto_task_chunk
from conml.objective import ConMLObjective
from conml.performance import apply_performance
from conml.tables.table_sweep import every_sweep_cell
from conml.task_chunks import AUTO, check_task_chunk

EXPERIMENTS = CONFIGS / "experiment"

# Settings that do not change what one meta-training step computes: presets that differ only in
# these (Table 3 and Table 4 cells: miniImageNet and tieredImageNet share every shape) take the same step.
NOT_THE_STEP = (
    "name",
    "seed",
    "logger",
    "paths",
    "resume",
    "eval",
    "dataset.root",
    "dataset.name",
    "dataset.verify",
    "model.pretrained",
    "trainer.steps",
    "trainer.log_every",
    "trainer.val_every",
    "trainer.val_episodes",
    "trainer.ckpt_every",
    "trainer.patience",
    "trainer.grad_share_every",
    "trainer.workers",
)


def _width(cfg: DictConfig) -> int:
    return 16 if cfg.model._target_.endswith("GPT2") else 4  # GPT-2's width must divide into its heads


# --tiny: the same code on a few tasks of narrow networks, for a CPU in seconds (not paper sizes).
TINY = {
    "trainer.meta_batch_size": lambda cfg: 2,
    "eval.batch_size": lambda cfg: 2,
    "model.hidden": lambda cfg: [4] * len(cfg.model.hidden) if OmegaConf.is_list(cfg.model.hidden) else 4,
    "model.channels": lambda cfg: [4] * len(cfg.model.channels),
    "model.width": _width,
    "model.depth": lambda cfg: 1,
    "model.heads": lambda cfg: 2,
    "model.fc_units": lambda cfg: 16,
    "learner.set_encoder_width": lambda cfg: 4,
    "learner.eval_inner_steps": lambda cfg: 2,
    "dataset.train_ways": lambda cfg: 5,
    "dataset.queries": lambda cfg: 2,
    "dataset.train_queries": lambda cfg: 2,
    "eval.queries": lambda cfg: 2,
    "dataset.max_ways": lambda cfg: 5,
    "dataset.train_max_ways": lambda cfg: 5,
    "dataset.max_support_set_size": lambda cfg: 10,
    "dataset.train_max_support_set_size": lambda cfg: 10,
    "dataset.max_num_query": lambda cfg: 2,
}
# A few presets that between them build every learner and most datasets and networks (the CPU mode's default).
TINY_PRESETS = (
    "sinusoid-maml-5shot-conml",
    "miniimagenet-maml-1shot-conml",
    "tieredimagenet-maml-1shot-conml",
    "miniimagenet-reptile-5shot-conml",
    "miniimagenet-protonet-1shot-conml",
    "miniimagenet-matchingnet-5shot-conml",
    "tieredimagenet-simple_cnaps-1shot-conml",
    "metadataset-simple_cnaps-conml",
    "linear_regression-paper-conml",
    "same_different-fomaml-kim_conv2",
    "same_different-conventional-kim_conv2",
)


# The order preset files run in, after the cells of the table sweeps (configs/table/), so that a check cut
# short by its budget has measured the paper's tables first.
PRIORITY = ("metadataset", "samediff")


def _priority(name: str) -> int:
    if name in every_sweep_cell():
        return -1
    return next((i for i, prefix in enumerate(PRIORITY) if name.startswith(prefix)), len(PRIORITY))


def preset_names(patterns: list[str] | None = None) -> list[str]:
    """Every preset in PRIORITY order, or those matching `patterns`: the cells of the table sweeps
    (configs/table/, by run name) and the preset files (`configs/experiment/*.yaml`; subfolders hold
    shared parts)."""
    from fnmatch import fnmatchcase

    stems = [path.stem for path in EXPERIMENTS.glob("*.yaml")]
    names = sorted([*every_sweep_cell(), *stems], key=lambda n: (_priority(n), n))
    if not patterns:
        return names
    chosen = [n for n in names if any(fnmatchcase(n, p) for p in patterns)]
    unmatched = [p for p in patterns if not any(fnmatchcase(n, p) for n in names)]
    if unmatched:
        raise ValueError(
            f"no experiment preset matches {unmatched}; presets are the cells of configs/table/*.yaml, by run name "
            "(e.g. miniimagenet-maml-1shot-conml), and the files in configs/experiment/"
        )
    return chosen


def step_signature(cfg: DictConfig, ignore: tuple[str, ...] = NOT_THE_STEP) -> str:
    """The config without the keys `ignore`s: equal for presets whose meta-training steps are the same."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for key in ignore:
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node.get(parent) or {}
        node.pop(leaf, None)
    return json.dumps(config, sort_keys=True, default=str)


def shrink(cfg: DictConfig, changes: dict[str, Callable[[DictConfig], Any]]) -> None:
    """Apply `changes` to the keys `cfg` has (others are not this preset's business)."""
    with open_dict(cfg):
        for key, value in changes.items():
            if OmegaConf.select(cfg, key, default=None) is not None:
                OmegaConf.update(cfg, key, value(cfg), merge=False)


def choose_data(cfg: DictConfig, data: str) -> str:
    """'real' (prepared), 'synthetic' (dataset.synthetic=true) or 'generated' (drawn on the fly anyway).

    `data`: 'auto' uses a prepared dataset where there is one, 'synthetic' never reads one.
    """
    if "synthetic" not in cfg.dataset:
        return "generated"
    with open_dict(cfg):
        if "verify" in cfg.dataset:
            cfg.dataset.verify = False  # a checksum of every file is the data check's business, not this one's
        if data == "auto":
            try:
                build(cfg.dataset)
                return "real"
            except DataError:
                pass
        cfg.dataset.synthetic = True
    return "synthetic"


def stand_in_pretrained(cfg: DictConfig, scratch: Path) -> bool:
    """Point a missing pretrained checkpoint at random weights of the same network; True if it did."""
    path = cfg.model.get("pretrained")
    if path is None or Path(path).is_file():
        return False
    stand_in = scratch / f"random_resnet18_width{cfg.model.width}.pt"
    if not stand_in.exists():
        network = build(cfg.model, pretrained=None, frozen=False)  # the configured network, randomly initialised
        torch.save({"state_dict": network.state_dict()}, stand_in)
    with open_dict(cfg):
        cfg.model.pretrained = str(stand_in)
    return True


@dataclass
class Built:
    """A preset's objects, as `conml.train.run` builds them."""

    cfg: DictConfig
    source: Any
    learner: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    objective: Callable
    device: torch.device
    notices: list[str]
    task_chunk: int | None = None  # trainer.task_chunk resolved (auto: measured here, as the trainer does)


def build_preset(cfg: DictConfig, device: torch.device, verdicts: Verdicts) -> Built:
    """Source, learner, optimizer, scheduler and objective; performance settings that failed their gates are off."""
    notices = verdicts.gate_learner(cfg)
    seed_everything(cfg.seed)
    source, learner = build_source_and_learner(cfg, device)
    optimizer = build(cfg.optimizer, params=learner.parameters())
    scheduler = None if cfg.scheduler is None else build(cfg.scheduler, optimizer=optimizer)
    settings, more = verdicts.gate(OmegaConf.to_object(cfg.performance))
    notices += more
    objective = apply_performance(settings, device, learner, ConMLObjective(OmegaConf.to_object(cfg.conml)))
    built = Built(cfg, source, learner, optimizer, scheduler, objective, device, notices)
    trainer = cfg.trainer
    check_task_chunk(trainer.task_chunk, trainer.meta_batch_size, world_size=1)
    if trainer.task_chunk == AUTO:
        first = lambda: next(last_meta_batches(built, 1))  # noqa: E731
        built.task_chunk, _ = auto_task_chunk(objective, learner, optimizer, first, device, trainer.memory_budget_gb)
    else:
        built.task_chunk = trainer.task_chunk
    return built


def last_meta_batches(built: Built, count: int) -> Iterator:
    """The run's last `count` training meta-batches, on the device (curricula are at their full size there)."""
    steps, size = built.cfg.trainer.steps, built.cfg.trainer.meta_batch_size
    batches = MetaBatches(built.source, size, 0, size, max(steps - count, 0), steps)
    return (batches[i].to(built.device) for i in range(len(batches)))
