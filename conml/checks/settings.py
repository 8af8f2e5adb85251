"""Start-up checks of what the schema's types cannot express: numeric ranges, settings the project
does not know, and combinations the code cannot honour.

They run before anything is built or written, so a bad value costs a second, not a run. Every
numeric setting of the typed configs has its range here (a test keeps the list complete); the
`_target_` groups are checked against the signatures of what they build (`conml.config`), and their
constructors refuse values they cannot take.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from conml.config import TrainConfig
from conml.errors import ConfigError, UserError
from conml.learners.base import Learner
from conml.objective import Terms
from conml.task_chunks import check_task_chunk
from conml.task_kind import CLASSIFICATION, TaskKind


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take: finite, at least `low` (above it when `open_low`), at most `high`."""

    meaning: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    example: Any = None  # a value to suggest when the default is None

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or value <= self.high

    def describe(self, integer: bool) -> str:
        kind = "an integer" if integer else "a finite number"
        bounds = [f"{'>' if self.open_low else '≥'} {self.low:g}"] if self.low is not None else []
        bounds += [f"≤ {self.high:g}"] if self.high is not None else []
        return f"{kind} {' and '.join(bounds)}".rstrip()


RANGES: dict[str, Range] = {
    "seed": Range("the run's seed; any integer"),
    "trainer.steps": Range("the number of meta-training steps", low=1),
    "trainer.meta_batch_size": Range("tasks per meta-batch", low=1),
    "trainer.log_every": Range("steps between logged training losses", low=1),
    "trainer.val_every": Range("steps between validations", low=1),
    "trainer.val_episodes": Range("validation tasks", low=1),
    "trainer.ckpt_every": Range("steps between checkpoints", low=1),
    "trainer.grad_clip": Range("the largest gradient norm (null: no clipping)", low=0, open_low=True, example=1.0),
    "trainer.patience": Range("validations without improvement before stopping early (null: never)", low=1, example=5),
    "trainer.workers": Range("background processes preparing meta-batches (0: none)", low=0),
    "trainer.grad_share_every": Range("steps between measurements of ConML's gradient share (0: never)", low=0),
    "trainer.memory_budget_gb": Range(
        "GPU memory task_chunk=auto plans for, in GB (null: 90% of the GPU's)", low=0, open_low=True, example=70
    ),
    "eval.episodes": Range("meta-test tasks", low=1),
    "eval.batch_size": Range("tasks per meta-test batch", low=1),
    "eval.shots": Range("support sizes to meta-test at (null: the dataset's)", low=1, example=[5]),
    "eval.queries": Range("query examples per meta-test task (null: the dataset's)", low=1, example=15),
    "conml.lam": Range("ConML's weight lambda", low=0),
    "conml.num_subsets": Range("subsets kappa per task (K)", low=1),
    "conml.subset_fraction": Range(
        "the size of random/prefix subsets as a fraction of support ∪ query", low=0, high=1, open_low=True, example=0.5
    ),
}


def check_settings(cfg: DictConfig, world_size: int = 1) -> None:
    """Every check that needs the config alone: references between settings, known keys, numeric ranges, combinations."""
    check_references(cfg)
    check_known_keys(cfg)
    check_ranges(cfg)
    check_learning_rates(cfg)
    check_combinations(cfg, world_size)
    check_data_dir(cfg)


def check_references(cfg: DictConfig) -> None:
    """A setting taken from another one that this combination of groups does not have (`model=gpt2`
    reads `${dataset.dims}`, which only the in-context-learning datasets set)."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError as error:
        parent, _, key = error.full_key.rpartition(".")
        reference = OmegaConf.to_container(OmegaConf.select(cfg, parent) if parent else cfg).get(
            key
        )  # unresolved: the ${...} itself
        raise ConfigError(
            f"{error.full_key} is {reference}, but this combination of settings cannot resolve it ({error.msg.splitlines()[0]}). "
            f"The group that sets {error.full_key} needs another group that provides what it refers to (a model that reads "
            f"dataset settings needs a dataset that has them): choose groups that fit together, or set {error.full_key} yourself."
        ) from None


def check_known_keys(cfg: DictConfig) -> None:
    """Refuse keys that no part of the project reads (added with `+key=value`, or left in a preset)."""
    sections = {f.name: f for f in dataclasses.fields(TrainConfig)}
    _check_keys(cfg, "", sorted(sections))
    for name, spec in sections.items():
        node = OmegaConf.select(cfg, name, throw_on_resolution_failure=False)  # sections only: nothing to resolve
        if isinstance(node, DictConfig) and spec.default_factory is not dataclasses.MISSING:
            schema = spec.default_factory()
            if dataclasses.is_dataclass(schema):
                _check_keys(node, f"{name}.", [f.name for f in dataclasses.fields(schema)])


def _check_keys(node: DictConfig, prefix: str, allowed: list[str]) -> None:
    for key in node:
        if key not in allowed:
            where = f"of {prefix.rstrip('.')}" if prefix else "at the top level"
            raise ConfigError(
                f"{prefix}{key} is not a setting this project knows, so it would be ignored. The settings {where} are: "
                f"{', '.join(allowed)}. Remove it or correct its spelling."
            )


def check_ranges(cfg: DictConfig) -> None:
    for path, allowed in RANGES.items():
        value = OmegaConf.select(cfg, path)
        is_list = isinstance(value, (ListConfig, list))
        values = list(value) if is_list else [value]
        default = _default(path)
        example = f"{path}={default} (the default)" if default is not None else f"{path}={allowed.example}"
        if is_list and not values:
            raise ConfigError(
                f"{path}=[] names no value: {path} is {allowed.meaning}. Give a list such as {example}, or {path}=null."
            )
        for item in values:
            if item is not None and not allowed.allows(item):
                must = allowed.describe(isinstance(item, int))
                raise ConfigError(
                    f"{path}={list(values) if is_list else value} is out of range: {path} is {allowed.meaning}, and "
                    f"{'each value ' if is_list else ''}must be {must}. Set it within that range, e.g. {example}."
                )


def _default(path: str) -> Any:
    node: Any = TrainConfig()
    for part in path.split("."):
        node = getattr(node, part)
    return node


def check_learning_rates(cfg: DictConfig) -> None:
    """Every learning rate of a built group (`optimizer.lr`, `learner.inner_lr`, ...) is a finite number above 0:
    a negative one climbs the loss, and the constructors do not all refuse it."""
    for group in ("learner", "optimizer", "scheduler"):
        node = cfg.get(group)
        for key, value in node.items() if isinstance(node, DictConfig) else []:
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if (key == "lr" or key.endswith("_lr")) and number and not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"{group}.{key}={value} is out of range: a learning rate must be a finite number > 0. Set it above 0, e.g. {group}.{key}=0.01."
                )


def check_combinations(cfg: DictConfig, world_size: int = 1) -> None:
    """Settings that are each valid but cannot work together (`world_size`: the processes the meta-batch is shared by)."""
    conml, trainer = cfg.conml, cfg.trainer
    if conml.enabled and Terms(conml.terms) != Terms.alignment and trainer.meta_batch_size < 2:
        raise ConfigError(
            f"trainer.meta_batch_size={trainer.meta_batch_size} with ConML's discrimination term (conml.terms={Terms(conml.terms).value}): "
            "d_out compares the tasks of a meta-batch with one another, so it needs at least 2 tasks per meta-batch; "
            "with 1 it is always 0 and ConML silently becomes alignment-only. Set trainer.meta_batch_size to 2 or more, "
            "or choose conml=alignment if alignment alone is what you want."
        )
    check_task_chunk(trainer.task_chunk, trainer.meta_batch_size, world_size)
    if cfg.resume not in (None, "auto") and not str(cfg.resume).strip():
        raise ConfigError(
            "resume= is empty: give the run folder to continue (resume=outputs/<name>/<date>_<time>), resume=auto, or leave it out."
        )


def check_data_dir(cfg: DictConfig) -> None:
    """paths.data_dir (CONML_DATA) is the folder of the prepared datasets: if it is a file, say so, rather than
    that the dataset folder under it does not exist. Only runs that read something under it are refused."""
    data_dir = str(cfg.paths.data_dir)
    if not Path(data_dir).exists() or Path(data_dir).is_dir():
        return
    config = OmegaConf.to_container(cfg, resolve=True)
    groups = [config.get(group) for group in ("dataset", "model", "learner")]
    if not any(value.startswith(data_dir.rstrip("/") + "/") for value in _strings(groups)):
        return
    # configs/train.yaml reads CONML_DATA into paths.data_dir unless paths.data_dir= replaced it
    written = str(cfg.paths._get_node("data_dir")._value())
    name = "CONML_DATA" if "CONML_DATA" in written and data_dir != "data" else "paths.data_dir"
    raise ConfigError(
        f"{name}={data_dir} is a file, not a folder: it must be the folder that holds the prepared datasets "
        f"(<{name}>/miniimagenet, <{name}>/metadataset, ...), which this run reads. Point {name} at that folder"
        + (", or unset it to use data/." if name == "CONML_DATA" else ".")
    )


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []


def check_learner_kind(cfg: DictConfig, kind: TaskKind) -> None:
    """A learner that classifies (its task models are built from class labels) needs classification tasks."""
    learner = get_object(cfg.learner._target_)
    builds_from_labels = (
        isinstance(learner, type) and issubclass(learner, Learner) and learner.builds_models_from_labels
    )
    if builds_from_labels and kind is not CLASSIFICATION:
        raise ConfigError(
            f"learner={cfg.learner._target_} builds its task models from class labels, but the dataset "
            f"({cfg.dataset._target_}) has {kind.name} tasks. Choose a learner that also learns {kind.name} "
            "(maml, fomaml, reptile, conventional), or a classification dataset (miniimagenet, tieredimagenet, "
            "metadataset, same_different)."
        )


def check_ways(cfg: DictConfig, kind: TaskKind) -> None:
    """A classification task needs at least two classes: with one, every prediction is right (100 % accuracy),
    the episodic loss and its gradient are 0, and nothing is learned."""
    if kind is not CLASSIFICATION:
        return
    for key in ("ways", "train_ways", "min_ways"):
        value = cfg.dataset.get(key)
        if isinstance(value, int) and value < 2:
            raise ConfigError(
                f"dataset.{key}={value}: a classification task needs at least 2 classes. With one, every prediction "
                "is right (100 % accuracy), the episodic loss and its gradient are 0, and nothing is learned. "
                f"Set dataset.{key} to 2 or more, e.g. dataset.{key}=5."
            )


def check_evaluation(cfg: DictConfig, source) -> None:
    """Draw one meta-test task at every support size now, so that impossible eval.shots or eval.queries
    fail before training rather than after it."""
    for shots in cfg.eval.shots or [None]:
        try:
            source.sample("test", 0, 1, shots, cfg.eval.queries)
        except UserError as error:
            raise ConfigError(
                f"eval.shots={shots if shots is not None else 'null'}, eval.queries={cfg.eval.queries if cfg.eval.queries is not None else 'null'}: "
                f"no meta-test task can be drawn ({error}). Choose support and query sizes the test split can provide."
            ) from None
