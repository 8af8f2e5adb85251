"""Typed config schema and start-up checks, so a misconfigured run fails in its first second.

The fixed parts of the config (trainer, eval, logger, ConML, paths) are dataclasses registered in
Hydra's ConfigStore: a wrong key or a wrong type fails at composition with the allowed values. The
composable parts (dataset, model, learner, optimizer, scheduler) are `_target_` trees; their schema
is the signature of the class they build, checked here before anything is instantiated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from conml.cell_name import cell_name, cell_tags, leaf
from conml.errors import ConfigError
from conml.multirun_jobs import job_folder
from conml.objective import ConMLSettings
from conml.performance import PerformanceSettings
from conml.task_kind import CLASSIFICATION, REGRESSION


class WandbMode(str, Enum):
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class LoggerConfig:
    """Weights & Biases run settings; offline by default so that no account is needed."""

    mode: WandbMode = WandbMode.offline
    project: str = "conml"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    name: Optional[str] = None
    # Upload checkpoints/best.pt, results.json and train.log as a W&B artifact when the run ends.
    log_artifacts: bool = False


@dataclass
class TrainerConfig:
    """Meta-training loop: steps are meta-batches of `meta_batch_size` tasks."""

    steps: int = 5000
    meta_batch_size: int = 32
    log_every: int = 10
    val_every: int = 500
    val_episodes: int = 200
    ckpt_every: int = 500
    grad_clip: Optional[float] = None
    # Stop after this many validations without improvement (early stopping); None: never.
    patience: Optional[int] = None
    # Background processes that prepare meta-batches (0: sample in the training process).
    workers: int = 0
    # Measure ConML's gradient share (train/conml_grad_share) every this many steps; 0: never.
    grad_share_every: int = 50
    # Tasks whose graphs are built at once (conml/task_chunks.py): null, the whole meta-batch of a
    # process; an integer from 1 to it; or auto, the largest chunk that fits memory_budget_gb
    # (measured at start-up on a GPU; no chunks on a CPU). Every choice gives the same meta-gradient.
    task_chunk: Any = None
    # GPU memory in GB that task_chunk=auto plans for; null: 90% of the GPU's.
    memory_budget_gb: Optional[float] = None


class Checkpoint(str, Enum):
    """Which checkpoint is meta-tested at the end of a run."""

    best = "best"  # the best validation score
    last = "last"  # the final step


@dataclass
class EvalConfig:
    """Meta-test on a fixed, seed-addressed episode set of the test split."""

    episodes: int = 1000
    batch_size: int = 100
    # Support sizes to meta-test at; None: the dataset's training shots.
    shots: Optional[list[int]] = None
    # Query examples per task at meta-test; None: the dataset's default.
    queries: Optional[int] = None
    checkpoint: Checkpoint = Checkpoint.best


# Settings a resumed run may change; every other difference means a different experiment.
# (Task chunks change memory and speed, never the meta-gradient: a run may continue on another GPU.)
RESUMABLE_CHANGES = (
    "resume",
    "optimize_metric",
    "trainer.steps",
    "trainer.log_every",
    "trainer.val_every",
    "trainer.ckpt_every",
    "trainer.task_chunk",
    "trainer.memory_budget_gb",
    "eval",
    "logger",
    "paths",
    "device",
    "provenance",
)


class JobType(str, Enum):
    """What launched a run: its W&B job type and provenance.job_type."""

    train = "train"  # a run or multirun of one's own
    search = "search"  # a trial of a hyperparameter search (a sweeper other than Hydra's basic one, e.g. Optuna)
    table = "table"  # a cell of a paper table, launched by the table (`make table-N`, `scripts/table.py run`)
    smoke = "smoke"  # a table's smoke run (debug=smoke): checks the path, its numbers are not results


@dataclass
class Provenance:
    """What made the run, in its W&B config and results.json, so that tables and dashboards can tell a table's
    cells from sweeps and searches that share their name. `table` is set by a table's launch (configs/table/*.yaml,
    `scripts/table.py run`); `cell`, `sweep` and `job_type` are filled in at start-up (conml.train), replacing any
    value given."""

    table: Optional[str] = None  # the paper table the run is a cell of (scripts/table.py list)
    cell: Optional[str] = None  # that cell: the run name and the settings that tell it apart (conml.lam=1)
    sweep: Optional[str] = None  # the multirun folder, relative to paths.output_dir; null: a single run
    job_type: Optional[JobType] = None


@dataclass
class PathsConfig:
    output_dir: str = "outputs"
    data_dir: str = "data"


@dataclass
class TrainConfig:
    """The whole run; `dataset`, `model`, `learner`, `optimizer`, `scheduler` are `_target_` trees."""

    dataset: Any = MISSING
    model: Any = MISSING
    learner: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = None
    conml: ConMLSettings = field(default_factory=ConMLSettings)
    performance: PerformanceSettings = field(default_factory=PerformanceSettings)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    provenance: Provenance = field(default_factory=Provenance)
    name: str = "default"
    seed: int = 0
    device: str = "auto"
    # A run directory to continue (its checkpoints/last.pt), in place and in the same W&B run;
    # "auto": continue this run folder if it holds a checkpoint (what a requeued job does).
    resume: Optional[str] = None
    # What `main` returns, for a sweeper to optimise: the best validation score of the run (that of
    # checkpoints/best.pt), named val/<metric> (val/mse, lower is better; val/accuracy in percent,
    # higher is better); None: the run's own. The test split is never optimised.
    optimize_metric: Optional[str] = None


def register() -> None:
    """Register the schema and the resolvers the YAML files use."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    if not OmegaConf.has_resolver("run_dir"):
        OmegaConf.register_new_resolver(
            "run_dir", lambda resume, fresh: fresh if resume in (None, "", "auto") else resume
        )
    if not OmegaConf.has_resolver("job_folder"):
        OmegaConf.register_new_resolver("job_folder", job_folder)
    if not OmegaConf.has_resolver("metric_direction"):
        OmegaConf.register_new_resolver("metric_direction", metric_direction)
    if not OmegaConf.has_resolver("pick"):
        OmegaConf.register_new_resolver("pick", pick)
    if not OmegaConf.has_resolver("leaf"):
        OmegaConf.register_new_resolver("leaf", leaf)
    if not OmegaConf.has_resolver("cell_name"):
        OmegaConf.register_new_resolver("cell_name", cell_name)
    if not OmegaConf.has_resolver("cell_tags"):
        OmegaConf.register_new_resolver("cell_tags", cell_tags)


def pick(key: Any, options: dict) -> Any:
    """`${pick:${dataset.shots},{1:30,5:20}}`: a setting that follows another (ProtoNet's training ways
    per shot count), so one protocol file serves every cell of a table instead of one file per cell."""
    if key not in options:
        raise ConfigError(
            f"No value for {key!r} among {sorted(options, key=str)} in a `pick` of the config; "
            "set the setting that uses it explicitly on the command line."
        )
    return options[key]


def metric_direction(metric: str) -> str:
    """How a sweep treats `metric` (an optimize_metric, a resolver for hydra.sweeper.direction):
    'minimize' for val/mse, 'maximize' for val/accuracy."""
    kinds = {f"val/{kind.metric_name}": kind for kind in (REGRESSION, CLASSIFICATION)}
    if metric not in kinds:
        raise ConfigError(f"optimize_metric={metric} is not a validation metric; it is one of {', '.join(kinds)}.")
    return "maximize" if kinds[metric].higher_is_better else "minimize"
