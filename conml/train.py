"""Entrypoint: compose the config, build the run, meta-train, meta-test, write results.json.

python -m conml.train dataset=sinusoid learner=maml conml=on trainer.steps=2000   (or: conml-train ...)
"""

from __future__ import annotations

import errno
import json
import shlex
import sys
import time
import traceback
from pathlib import Path
from statistics import median

try:  # Ctrl-C while torch and the project load (a second or more): one line and exit 130, as later in start-up
    import hydra
    import torch
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig, OmegaConf, open_dict

    from conml.build import SUPPLIED, build, build_source_and_learner, resolve_device
    from conml.checkpoint import load_checkpoint, seed_everything
    from conml.checks.command_line import check_overrides
    from conml.checks.local_config import check_local_config
    from conml.checks.settings import check_evaluation, check_settings
    from conml.checks.targets import check_targets
    from conml.config import (
        RESUMABLE_CHANGES,
        JobType,
        Provenance,
        metric_direction,
        register,
    )
    from conml.distributed import join_process_group
    from conml.errors import ConfigError, UserError, exit_with, report
    from conml.evaluate import meta_test
    from conml.launch import Launch
    from conml.multirun_jobs import JobOutcome, run_name, swept_in
    from conml.objective import ConMLObjective
    from conml.performance import apply_performance
    from conml.preemption import Preempted, PreemptionGuard
    from conml.run_folder import already_holds_a_run, check_free, existed_before, hold, remove_all_unused, remove_unused
    from conml.run_log import RunLog
    from conml.tables.multirun import SMOKE_DEBUG
    from conml.task_kind import TaskKind
    from conml.tracking import Tracker, prepare_console_capture
    from conml.trainer import Trainer
except KeyboardInterrupt:
    sys.stderr.write("\nInterrupted during start-up; nothing was written.\n")
    raise SystemExit(130) from None

register()


def run(cfg: DictConfig, run_dir: Path, log: RunLog | None = None, launch: Launch = Launch()) -> dict:
    """Meta-train and meta-test one configuration in `run_dir`; returns the results dict.

    Every check that can refuse the run (settings, run folder, resume, dataset, device, model fit)
    comes first: nothing is written until all have passed. `log` copies what the run prints to train.log;
    `launch` is what the launcher said (`Launch.from_environment`, read at the entry point).
    """
    check_settings(cfg, launch.world_size)
    check_targets(cfg, SUPPLIED)  # before the process group: a refusal must not wait on the other ranks
    record_provenance(cfg)
    shard, device = join_process_group(resolve_device(cfg.device), launch.world_size, launch.local_rank)
    config = OmegaConf.to_container(cfg, resolve=True)
    checkpoint_dir = run_dir / "checkpoints"
    if shard.is_main:
        check_free(run_dir)
    state = _resume_state(cfg, config, run_dir, launch.requeued)

    seed_everything(cfg.seed)
    source, learner = build_source_and_learner(cfg, device)
    check_evaluation(cfg, source)
    metric = _optimize_metric(cfg, source.kind)
    optimizer = build(cfg.optimizer, params=learner.parameters())
    scheduler = None if cfg.scheduler is None else build(cfg.scheduler, optimizer=optimizer)
    objective = ConMLObjective(OmegaConf.to_object(cfg.conml), shard)
    objective = apply_performance(OmegaConf.to_object(cfg.performance), device, learner, objective)

    run_id = state and state["wandb_run_id"]
    logger = OmegaConf.to_object(cfg.logger)
    logger.name = logger.name or run_name(cfg.name, cfg.seed)  # a multirun job's is set by _main
    with (
        hold(run_dir, cfg, log, active=shard.is_main, fresh=state is None),
        Tracker(
            run_dir, logger, config, cfg.name, run_id, active=shard.is_main, job_type=cfg.provenance.job_type.value
        ) as tracker,
    ):
        tracker.define_best(metric, metric_direction(metric))
        trainer = Trainer(
            learner,
            source,
            objective,
            optimizer,
            scheduler,
            cfg.trainer,
            tracker,
            checkpoint_dir,
            device,
            cfg.eval.batch_size,
            config,
            shard,
            progress=launch.progress,
        )
        if state is not None:
            trainer.load_state(state)
            tracker.forget_after(trainer.step)
        plan = trainer.plan_task_chunks()  # on every process: task_chunk=auto measures a step
        if shard.is_main:
            print(_start_line(cfg, run_dir, device, trainer.step, _precision(cfg, device, learner), plan))
        with PreemptionGuard(launch.slurm_job) as guard:
            trainer.fit(guard)
        if not shard.is_main:  # meta-testing and results are the main process's
            return {}

        chosen = checkpoint_dir / f"{cfg.eval.checkpoint.value}.pt"
        learner.load_state_dict(load_checkpoint(chosen)["learner"])
        started = time.perf_counter()
        results = meta_test(
            learner,
            source,
            cfg.eval.episodes,
            cfg.eval.batch_size,
            device,
            cfg.eval.shots,
            cfg.eval.queries,
            launch.progress,
        )
        summary = {
            "name": cfg.name,
            "seed": cfg.seed,
            "checkpoint": chosen.name,
            "steps": trainer.step,
            "train_seconds": trainer.train_seconds,
            "test_seconds": time.perf_counter() - started,
            "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
            "conml_grad_share_median": median(trainer.grad_shares) if trainer.grad_shares else None,
            "conml_grad_share_measurements": len(trainer.grad_shares),
            "test": {key: value.as_dict() for key, value in results.items()},
            # what main returns to a sweep: the best validation score, that of checkpoints/best.pt
            "optimized": {"metric": metric, "value": trainer.best},
        }
        tracker.summarize(
            {f"test/{key}": value.mean for key, value in results.items()}
            | {f"test/{key}_ci95": value.ci95 for key, value in results.items()}
        )
        if trainer.grad_shares:
            tracker.summarize({"train/conml_grad_share_median": summary["conml_grad_share_median"]})
        (run_dir / "results.json").write_text(json.dumps({**summary, "config": config}, indent=2))
        # printed before the W&B run ends, so that its console and train.log in the artifact end with the results
        _print_results(cfg.name, run_dir, results, summary["conml_grad_share_median"], len(trainer.grad_shares))
        if logger.log_artifacts:
            tracker.log_artifact([checkpoint_dir / "best.pt", run_dir / "results.json", run_dir / "train.log"])
    return summary


def record_provenance(cfg: DictConfig) -> None:
    """Fill in cfg.provenance (config.Provenance: the table cell, multirun and job type of the run; the one place
    they are derived), and file the W&B run under it: its job type, and for a table's run the table as a tag.

    The job type follows from how the run was composed: debug=smoke makes a smoke run, a sweeper other than
    Hydra's basic one (Optuna) a search trial, provenance.table (set by the table's launch) a table's run."""
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    choices = hydra.runtime.choices if hydra is not None else {}
    table = cfg.provenance.table
    if choices.get("debug") == SMOKE_DEBUG:
        job_type = JobType.smoke
    elif choices.get("hydra/sweeper", "basic") != "basic":
        job_type = JobType.search
    else:
        job_type = JobType.table if table else JobType.train
    multirun = hydra is not None and hydra.mode == RunMode.MULTIRUN
    cfg.provenance = Provenance(
        table=table,
        cell=_table_cell(cfg, table) if table else None,
        sweep=_sweep(Path(hydra.runtime.output_dir).parent, Path(cfg.paths.output_dir)) if multirun else None,
        job_type=job_type,
    )
    if table and table not in cfg.logger.tags:
        cfg.logger.tags = [*cfg.logger.tags, table]  # tags may be a resolver's value, not a list to append to


def _table_cell(cfg: DictConfig, table: str) -> str:
    """The cell of `table` that this run fills, as the table looks it up (conml.tables.spec.RunKey)."""
    # Imported here: the tables and their figures take a second or two to import, which only a table's runs need.
    from conml.tables.catalog import TABLES

    if table not in TABLES:
        raise ConfigError(f"provenance.table={table} is not a paper table; the tables are: {', '.join(TABLES)}.")
    key = TABLES[table].key_of(cfg.name, OmegaConf.to_container(cfg, resolve=True))
    if key is None:
        raise ConfigError(
            f"provenance.table={table}, but this run ({cfg.name}) is none of that table's cells "
            f"({', '.join(str(k) for k in TABLES[table].run_keys)}). Leave provenance.table unset for a run of your "
            "own; a table's own launch (`scripts/table.py run`, `python -m conml.train -m +table=...`) sets it."
        )
    return str(key)


def _sweep(folder: Path, outputs: Path) -> str:
    """A multirun's id: its folder relative to the output folder (tables/table2/<date>_<time>, multirun/<date>_<time>),
    or its name when it lies elsewhere."""
    try:
        return folder.resolve().relative_to(outputs.resolve()).as_posix()
    except ValueError:
        return folder.name


def _optimize_metric(cfg: DictConfig, kind: TaskKind) -> str:
    """The metric `main` returns: optimize_metric, which must be the run's validation metric (val/mse, val/accuracy)."""
    own = f"val/{kind.metric_name}"
    if cfg.optimize_metric not in (None, own):
        raise ConfigError(
            f"optimize_metric={cfg.optimize_metric}, but this run is validated by {own} (a {kind.name} task), which is "
            f"what it can return to a sweep: set optimize_metric={own}, or leave it unset."
        )
    return own


def _start_line(cfg: DictConfig, run_dir: Path, device: torch.device, step: int, precision: str, plan: str) -> str:
    """What is about to happen, where, on which device (as `device=auto` resolved it), in which precision,
    and how each meta-batch is taken (`plan`: meta-batch size, processes, task chunks)."""
    where = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
    doing = (
        f"Resuming {run_dir} at step {step} of {cfg.trainer.steps}"
        if step
        else f"Meta-training {cfg.trainer.steps} steps in {run_dir}"
    )
    return f"{cfg.name}, seed {cfg.seed}: {doing}, on {where} (device={cfg.device}); precision {precision}; {plan}."


def _precision(cfg: DictConfig, device: torch.device, learner: torch.nn.Module) -> str:
    """The arithmetic of the run: performance.precision on a GPU (bf16 where the learner autocasts itself)."""
    stored = str(next(learner.parameters()).dtype).removeprefix("torch.")
    if device.type != "cuda":
        return f"{stored} (performance.precision acts on CUDA only)"
    if learner.mixed_precision:
        return f"bf16 autocast (learner.mixed_precision), weights {stored}"
    return f"{cfg.performance.precision.value}, weights {stored}"


def _resume_state(cfg: DictConfig, config: dict, run_dir: Path, requeued: bool) -> dict | None:
    """The checkpoint to continue from, after checking it belongs to the same experiment and fits this run's settings."""
    last = run_dir / "checkpoints" / "last.pt"
    if cfg.resume == "auto" or (cfg.resume is None and requeued):
        if not last.exists():
            return None
    elif cfg.resume is None:
        if last.exists():
            raise already_holds_a_run(run_dir)
        return None
    else:
        _check_resume_folder(Path(cfg.resume), run_dir)
        if not last.exists():
            raise ConfigError(
                f"resume={cfg.resume}: that folder holds no checkpoints/last.pt, so there is no run to continue in it."
            )
    state = load_checkpoint(last)
    changed = {
        key: values
        for key, values in _differences(state["config"], config).items()
        if not key.startswith(RESUMABLE_CHANGES)
    }
    if changed:
        listed = "; ".join(f"{key}: {_shown_value(old)} -> {_shown_value(new)}" for key, (old, new) in changed.items())
        raise ConfigError(
            f"resume={cfg.resume}: the run was started with different settings ({listed}; started -> now). "
            "Resume with the started values, or start a new run."
        )
    if state["step"] > cfg.trainer.steps:
        raise ConfigError(
            f"The run in {run_dir} is already at step {state['step']}, beyond trainer.steps={cfg.trainer.steps}. "
            f"Continue it with trainer.steps={state['step']} or more (the step budget may change on resume)."
        )
    return state


def _check_resume_folder(folder: Path, run_dir: Path) -> None:
    if not existed_before(folder):
        raise ConfigError(
            f"resume={folder}: there is no such folder. Pass the folder of the run to continue, as printed when it "
            "started (outputs/<name>/<date>_<time>), or resume=auto to continue this run folder if it holds a run."
        )
    if folder.resolve() != run_dir.resolve():
        raise ConfigError(
            f"resume={folder} but this run's folder is {run_dir}: a run continues in its own folder. "
            "Leave hydra.run.dir (and multirun, -m) out when resuming."
        )


def _differences(old: object, new: object, prefix: str = "") -> dict[str, tuple[object, object]]:
    """Every leaf key whose value differs, with its (old, new) values; a key only one side has shows None on the other."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: dict[str, tuple[object, object]] = {}
        for key in sorted(old.keys() | new.keys(), key=str):
            found.update(_differences(old.get(key), new.get(key), f"{prefix}{key}."))
        return found
    return {} if old == new else {prefix.rstrip("."): (old, new)}


def _shown_value(value: object) -> str:
    """A setting as the command line writes it (null for None), cut short when long."""
    shown = "null" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _print_results(name: str, run_dir: Path, results: dict, grad_share: float | None, measurements: int) -> None:
    print(f"\n{name}: meta-test results (mean ± 95% CI) — {run_dir / 'results.json'}")
    for key, value in results.items():
        print(f"  {key:>20}: {value}  ({value.count} tasks)")
    if grad_share is not None:
        print(
            f"  {'conml_grad_share':>20}: {grad_share:.3g}  (median of {measurements} measurements of "
            "|grad lambda*(d_in - d_out)| / |grad L_e|)"
        )


CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# This machine's settings, merged into every run (configs/local/README.md).
LOCAL_CONFIG = CONFIGS / "local" / "default.yaml"


def main(cfg: DictConfig | None = None) -> JobOutcome | None:
    """The command line (`_main` under Hydra), after checking configs/local/default.yaml and the overrides' keys:
    Hydra would report a mistake in that hand-written file as a traceback, or as an unknown key `local`, and a
    misspelled key as "not in struct" and a bad sweep value after making the multirun's folder. A config passed in is run as it is."""
    if cfg is None:
        try:
            check_local_config(LOCAL_CONFIG)
            check_overrides(sys.argv[1:], CONFIGS)
        except ConfigError as error:
            exit_with(error)
    try:
        return _main(cfg)
    except KeyboardInterrupt:  # before the run's own handling starts: while Hydra composes or makes the folder
        remove_all_unused()
        print("\nInterrupted during start-up; nothing was written.\n", file=sys.stderr)
        sys.exit(130)


@hydra.main(version_base="1.3", config_path=str(CONFIGS), config_name="train")
def _main(cfg: DictConfig) -> JobOutcome:
    """One run, and every way it can end as one paragraph and an exit code.

    Returns the run's optimize_metric (`float()` of the JobOutcome, what a sweeper such as Optuna
    optimises) and its test results. A refused run leaves no trace: the folders made for it are
    removed again. In a multirun, a job that fails reports its error and returns it (a failed trial,
    without a value), so that the other jobs still run; an interrupt (Ctrl-C, preemption) stops the
    whole multirun.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if multirun and cfg.logger.name is None:
        with open_dict(cfg):  # the W&B run is named by its swept values, like its job folder but without the number
            cfg.logger.name = run_name(cfg.name, cfg.seed, hydra_cfg.overrides.task, swept_in(hydra_cfg.sweep.dir))
    prepare_console_capture(cfg.logger.mode)
    with RunLog() as log:
        try:
            summary = run(cfg, run_dir, log, Launch.from_environment())
            if not summary:  # a process other than the main one: the results are the main process's
                return JobOutcome()
            return JobOutcome(summary["optimized"]["value"], summary["test"])
        except Preempted as error:
            print(f"\n{error} Continue with: {_resume_command(run_dir)}\n", file=sys.stderr)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            remove_unused(run_dir)
            last = run_dir / "checkpoints" / "last.pt"
            after = (
                f"The run's last checkpoint is {last}; continue with: {_resume_command(run_dir)}"
                if last.exists()
                else "There is no checkpoint to continue from."
            )
            print(f"\nInterrupted. {after}\n", file=sys.stderr)
            sys.exit(130)
        except (UserError, OSError) as raised:
            remove_unused(run_dir)
            error = _as_user_error(raised)
            if not multirun:
                exit_with(error)
            report(error)
            return JobOutcome(error=str(error))
        except Exception as error:  # noqa: BLE001 - a bug in one job must not stop the others
            if not multirun:
                raise
            traceback.print_exc()
            return JobOutcome(error=f"{type(error).__name__}: {error}")


def _as_user_error(error: UserError | OSError) -> UserError:
    """A full disk as one paragraph; any other OSError is a bug and is raised as it is."""
    if isinstance(error, UserError):
        return error
    if error.errno not in (errno.ENOSPC, errno.EDQUOT):
        raise error
    return UserError(
        f"The disk is full: could not write {error.filename}. Checkpoints already written are intact; "
        "free space or set paths.output_dir, then continue with resume=<run folder>."
    )


def _resume_command(run_dir: Path) -> str:
    """The command that continues the run in `run_dir`: this run's overrides, with resume=<run_dir>."""
    overrides = [o for o in HydraConfig.get().overrides.task if o.split("=", 1)[0].lstrip("+~") != "resume"]
    return shlex.join(["python", "-m", "conml.train", *overrides, f"resume={_shown(run_dir)}"])


def _shown(path: Path) -> Path:
    """`path` relative to the working directory when it lies below it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


if __name__ == "__main__":
    main()
