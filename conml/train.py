"""Entrypoint: compose the config, build the run, meta-train, meta-test, write results.json.

    python -m conml.train dataset=sinusoid learner=maml conml=on trainer.steps=2000
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path
from statistics import median

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from conml.build import SUPPLIED, build, build_source_and_learner, resolve_device
from conml.checkpoint import load_checkpoint, seed_everything
from conml.config import check_targets, register
from conml.distributed import shard_from_environment
from conml.errors import ConfigError, UserError
from conml.evaluate import meta_test
from conml.objective import ConMLObjective
from conml.performance import apply_performance
from conml.preemption import PreemptionGuard
from conml.tracking import Tracker
from conml.trainer import Trainer

register()

# Settings a resumed run may change; every other difference means a different experiment.
RESUMABLE_CHANGES = ("resume", "trainer.steps", "trainer.log_every", "trainer.val_every", "trainer.ckpt_every", "eval", "logger", "paths", "device")


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Meta-train and meta-test one configuration in `run_dir`; returns the results dict."""
    check_targets(cfg, SUPPLIED)
    shard, device = shard_from_environment(resolve_device(cfg.device))
    config = OmegaConf.to_container(cfg, resolve=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = run_dir / "checkpoints"
    state = _resume_state(cfg, config, checkpoint_dir)

    seed_everything(cfg.seed)
    source, learner = build_source_and_learner(cfg, device)
    optimizer = build(cfg.optimizer, params=learner.parameters())
    scheduler = None if cfg.scheduler is None else build(cfg.scheduler, optimizer=optimizer)
    objective = ConMLObjective(OmegaConf.to_object(cfg.conml), shard)
    objective = apply_performance(OmegaConf.to_object(cfg.performance), device, learner, objective)

    run_id = state and state["wandb_run_id"]
    with Tracker(run_dir, OmegaConf.to_object(cfg.logger), config, cfg.name, run_id, active=shard.is_main) as tracker:
        trainer = Trainer(learner, source, objective, optimizer, scheduler, cfg.trainer, tracker, checkpoint_dir, device, cfg.eval.batch_size, config, shard)
        if state is not None:
            trainer.load_state(state)
            tracker.forget_after(trainer.step)
            print(f"Resuming {run_dir} at step {trainer.step} of {cfg.trainer.steps}.")
        with PreemptionGuard() as guard:
            trainer.fit(guard)
        if not shard.is_main:  # meta-testing and results are the main process's
            return {}

        chosen = checkpoint_dir / f"{cfg.eval.checkpoint}.pt"
        learner.load_state_dict(load_checkpoint(chosen)["learner"])
        started = time.perf_counter()
        results = meta_test(learner, source, cfg.eval.episodes, cfg.eval.batch_size, device, cfg.eval.shots, cfg.eval.queries)
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
        }
        tracker.summarize({f"test/{key}": value.mean for key, value in results.items()} | {f"test/{key}_ci95": value.ci95 for key, value in results.items()})
        if trainer.grad_shares:
            tracker.summarize({"train/conml_grad_share_median": summary["conml_grad_share_median"]})
        (run_dir / "results.json").write_text(json.dumps({**summary, "config": config}, indent=2))
    _print_results(cfg.name, run_dir, results, summary["conml_grad_share_median"], len(trainer.grad_shares))
    return summary


def _resume_state(cfg: DictConfig, config: dict, checkpoint_dir: Path) -> dict | None:
    """The checkpoint to continue from, after checking it belongs to the same experiment."""
    last = checkpoint_dir / "last.pt"
    requeued = int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0
    if cfg.resume == "auto" or (cfg.resume is None and requeued):
        if not last.exists():
            return None
    elif cfg.resume is None:
        if last.exists():
            raise ConfigError(
                f"{checkpoint_dir.parent} already holds a run (checkpoints/last.pt). Pass resume={checkpoint_dir.parent} "
                "to continue it, or choose another hydra.run.dir; nothing was overwritten."
            )
        return None
    elif not last.exists():
        raise ConfigError(f"resume={cfg.resume}: there is no checkpoints/last.pt in that folder, so there is nothing to continue.")
    state = load_checkpoint(last)
    changed = [key for key in _differences(state["config"], config) if not key.startswith(RESUMABLE_CHANGES)]
    if changed:
        raise ConfigError(
            f"resume={cfg.resume}: the run was started with different settings for {', '.join(changed)}. "
            "Resume with the original values, or start a new run."
        )
    return state


def _differences(old: object, new: object, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in old.keys() | new.keys() for d in _differences(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


def _print_results(name: str, run_dir: Path, results: dict, grad_share: float | None, measurements: int) -> None:
    print(f"\n{name}: meta-test results (mean ± 95% CI) — {run_dir / 'results.json'}")
    for key, value in results.items():
        print(f"  {key:>20}: {value}  ({value.count} tasks)")
    if grad_share is not None:
        print(f"  {'conml_grad_share':>20}: {grad_share:.3g}  (median of {measurements} measurements of "
              "|grad lambda*(d_in - d_out)| / |grad L_e|)")


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@hydra.main(version_base="1.3", config_path=str(CONFIGS), config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except UserError as error:
        print(f"\nerror: {error}\n", file=sys.stderr)
        sys.exit(error.exit_code)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"\nerror: the disk is full: could not write {error.filename}. Checkpoints already written are intact; "
              "free space or set paths.output_dir, then continue with resume=<run folder>.\n", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
