"""The meta-training loop: sample a meta-batch, build the loss, step, log, validate, checkpoint.

Meta-batch `s` holds tasks s*B .. s*B+B-1 of the train split, so a resumed run sees exactly the
batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from conml.checkpoint import remove_partial_checkpoints, restore_rng_states, rng_states, save_checkpoint
from conml.config import TrainerConfig
from conml.data.episode_source import EpisodeSource
from conml.data.prefetch import MetaBatches, meta_batch_stream
from conml.distributed import TaskShard
from conml.errors import UserError
from conml.evaluate import evaluate
from conml.learners.base import Learner
from conml.objective import ConMLObjective
from conml.preemption import Preempted, PreemptionGuard
from conml.tracking import Tracker


class TrainingDiverged(UserError):
    """The loss stopped being finite."""


class Trainer:
    def __init__(
        self,
        learner: Learner,
        source: EpisodeSource,
        objective: ConMLObjective,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        settings: TrainerConfig,
        tracker: Tracker,
        checkpoint_dir: Path,
        device: torch.device,
        eval_batch_size: int,
        config: dict,
        shard: TaskShard = TaskShard(),
    ):
        self.learner, self.source, self.objective, self.shard = learner, source, objective, shard
        self.optimizer, self.scheduler, self.settings = optimizer, scheduler, settings
        self.tracker, self.checkpoint_dir, self.device = tracker, checkpoint_dir, device
        self.eval_batch_size, self.config = eval_batch_size, config
        self.step = 0
        self.best: float | None = None
        self.stale_validations = 0
        self.train_seconds = 0.0

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "step": self.step,
            "learner": self.learner.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "rng": rng_states(),
            "best": self.best,
            "stale_validations": self.stale_validations,
            "train_seconds": self.train_seconds,
            "wandb_run_id": self.tracker.run_id,
            "config": self.config,
        }

    def load_state(self, state: dict) -> None:
        self.learner.load_state_dict(state["learner"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_states(state["rng"])
        self.step, self.best, self.train_seconds = state["step"], state["best"], state["train_seconds"]
        self.stale_validations = state["stale_validations"]

    def save(self, name: str) -> Path:
        """Checkpoint the run (main process only); a model with non-finite weights is never written."""
        if not all(torch.isfinite(p).all() for p in self.learner.parameters()):
            self._check_finite({"parameters": math.nan})
        path = self.checkpoint_dir / f"{name}.pt"
        if self.shard.is_main:
            save_checkpoint(self.state(), path)
        return path

    # -- loop --------------------------------------------------------------------------------
    def fit(self, guard: PreemptionGuard | None = None) -> None:
        """Train to `settings.steps`; on a preemption signal, checkpoint and raise Preempted."""
        remove_partial_checkpoints(self.checkpoint_dir)
        settings, size = self.settings, self.settings.meta_batch_size
        offset, local = self.shard.local_tasks(size)
        sums: dict[str, torch.Tensor] = {}
        counted, window_start = 0, time.perf_counter()
        quiet = {} if self.shard.is_main else {"disable": True}  # leaves TQDM_DISABLE in charge on the main process
        bar = tqdm(total=settings.steps, initial=self.step, desc="meta-train", unit="step", dynamic_ncols=True, **quiet)
        self.learner.train()
        batches = MetaBatches(self.source, size, offset, local, self.step, settings.steps)
        stream = meta_batch_stream(batches, settings.workers, pin_memory=self.device.type == "cuda")
        while self.step < settings.steps:
            started = time.perf_counter()
            batch = next(stream).to(self.device)
            parts = self.objective(self.learner, batch)
            self.optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
            self.shard.sum_gradients(self.learner.parameters())
            if settings.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.learner.parameters(), settings.grad_clip)
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            self.step += 1
            for key, value in (("loss", parts.total), ("loss_episodic", parts.episodic), ("d_in", parts.d_in), ("d_out", parts.d_out)):
                if value is not None:
                    sums[key] = sums.get(key, 0.0) + value.detach()
            counted += 1
            self.train_seconds += time.perf_counter() - started
            bar.update(1)

            last = self.step == settings.steps
            if self.step % settings.log_every == 0 or last:
                elapsed = time.perf_counter() - window_start
                means = {f"train/{k}": float(v) / counted for k, v in sums.items()}  # one host sync per window
                self._check_finite(means)
                means["train/lr"] = self.optimizer.param_groups[0]["lr"]
                means["train/tasks_per_s"] = counted * size / max(elapsed, 1e-9)
                self.tracker.log(means, self.step)
                bar.set_postfix(loss=f"{means['train/loss']:.4f}")
                sums, counted, window_start = {}, 0, time.perf_counter()
            if self.step % settings.val_every == 0 or last:
                self._validate()
            if self.step % settings.ckpt_every == 0 or last or self._out_of_patience():
                self.save("last")
                window_start = time.perf_counter()
            if self._out_of_patience():
                print(f"Early stop at step {self.step}: no validation improvement in {settings.patience} validations.")
                break
            if guard is not None and guard.requested is not None:
                bar.close()
                self._stop_for_preemption(guard)
        bar.close()

    def _stop_for_preemption(self, guard: PreemptionGuard) -> None:
        path = self.save("last")
        action = guard.hand_over()
        raise Preempted(
            f"Stopped by signal {guard.requested} at step {self.step} of {self.settings.steps}; checkpoint {path} "
            f"written; {action}. The run continues from it with resume={path.parent.parent} (or resume=auto in the same run folder).",
            guard.requested,
        )

    def _out_of_patience(self) -> bool:
        return self.settings.patience is not None and self.stale_validations >= self.settings.patience

    def _validate(self) -> None:
        result = evaluate(self.learner, self.source, "val", self.settings.val_episodes, self.eval_batch_size, self.device, progress=False)
        metric = self.source.kind.metric_name
        self.tracker.log({f"val/{metric}": result.mean, f"val/{metric}_ci95": result.ci95}, self.step)
        if self.source.kind.better(result.mean, self.best):
            self.best, self.stale_validations = result.mean, 0
            self.save("best")
        else:
            self.stale_validations += 1

    def _check_finite(self, means: dict[str, float]) -> None:
        if all(math.isfinite(v) for v in means.values()):
            return
        last = self.checkpoint_dir / "last.pt"
        where = f"The last good checkpoint is {last}." if last.exists() else "No checkpoint was written before it."
        raise TrainingDiverged(
            f"The meta-training loss became non-finite ({means}) within the {self.settings.log_every} steps "
            f"ending at step {self.step}. {where} Lower the learning rate (optimizer.lr / learner.inner_lr), "
            "set trainer.grad_clip, or resume from that checkpoint with different settings."
        )
