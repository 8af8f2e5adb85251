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

from conml.checkpoint import remove_partial_checkpoints, restore_rng_states, rng_states, save_checkpoint
from conml.config import TrainerConfig
from conml.data.episode_source import EpisodeSource
from conml.data.prefetch import MetaBatches, meta_batch_stream
from conml.distributed import TaskShard
from conml.errors import UserError
from conml.evaluate import evaluate
from conml.gradient_share import INERT_BELOW, MEASUREMENTS_BEFORE_VERDICT, inert_warning
from conml.learners.base import Learner
from conml.memory_plan import auto_task_chunk
from conml.objective import ConMLObjective
from conml.preemption import Preempted, PreemptionGuard
from conml.progress import Progress
from conml.task_chunks import AUTO, check_task_chunk
from conml.tracking import Tracker
from conml.training_step import meta_gradient, optimizer_step

# ConML's term this many times the episodic loss means lambda is far too large.
DOMINANCE_RATIO = 100.0


class TrainingDiverged(UserError):
    """The loss, or ConML's gradient share, stopped being finite."""


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
        progress: bool = True,
    ):
        self.learner, self.source, self.objective, self.shard = learner, source, objective, shard
        self.optimizer, self.scheduler, self.settings = optimizer, scheduler, settings
        self.tracker, self.checkpoint_dir, self.device = tracker, checkpoint_dir, device
        self.eval_batch_size, self.config, self.progress = eval_batch_size, config, progress
        self.step = 0
        self.best: float | None = None
        self.stale_validations = 0
        self.train_seconds = 0.0
        self.grad_shares: list[float] = []
        self.dominance_warned = False
        self.task_chunk: int | None = None  # tasks per chunk (trainer.task_chunk resolved); None: no chunks
        self.chunks_planned = False

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
            "grad_shares": self.grad_shares,
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
        self.grad_shares = list(state.get("grad_shares", []))

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
        if not self.chunks_planned:
            self.plan_task_chunks()
        settings, size = self.settings, self.settings.meta_batch_size
        offset, local = self.shard.local_tasks(size)
        sums: dict[str, torch.Tensor] = {}
        counted, window_start = 0, time.perf_counter()
        # A bar on a terminal, a line every LINE_EVERY_S seconds in a log file, on the main process unless TQDM_DISABLE.
        quiet = not (self.progress and self.shard.is_main)
        progress = Progress(settings.steps, "meta-train", "step", initial=self.step, disable=quiet)
        self.learner.train()
        batches = MetaBatches(self.source, size, offset, local, self.step, settings.steps, self.source.steps_per_draw)
        stream = meta_batch_stream(batches, settings.workers, pin_memory=self.device.type == "cuda")
        while self.step < settings.steps:
            started = time.perf_counter()
            batch = next(stream).to(self.device)
            parts, share = meta_gradient(
                self.objective, self.learner, batch, self.task_chunk, self.shard, self._measures_share_now()
            )
            if share is not None:
                self._log_share(share, progress)
            optimizer_step(self.learner, self.optimizer, self.scheduler, settings.grad_clip)
            self.step += 1
            logged = (
                ("loss", parts.total),
                ("loss_episodic", parts.episodic),
                ("loss_conml", parts.contrastive),
                ("d_in", parts.d_in),
                ("d_out", parts.d_out),
            )
            for key, value in logged:
                if value is not None:
                    sums[key] = sums.get(key, 0.0) + value.detach()
            counted += 1
            self.train_seconds += time.perf_counter() - started

            last = self.step == settings.steps
            if self.step % settings.log_every == 0 or last:
                elapsed = time.perf_counter() - window_start
                means = {f"train/{k}": float(v) / counted for k, v in sums.items()}  # one host sync per window
                self._check_finite(means)
                self._warn_if_conml_dominates(means, progress)
                means["train/lr"] = self.optimizer.param_groups[0]["lr"]
                means["train/tasks_per_s"] = counted * size / max(elapsed, 1e-9)
                self.tracker.log(means, self.step)
                progress.set_postfix(loss=f"{means['train/loss']:.4f}")
                sums, counted, window_start = {}, 0, time.perf_counter()
            progress.update(1)  # after the loss of a logging step is set: a progress line shows it
            if self.step % settings.val_every == 0 or last:
                self._validate()
            if self.step % settings.ckpt_every == 0 or last or self._out_of_patience():
                self.save("last")
                window_start = time.perf_counter()
            if self._out_of_patience():
                print(f"Early stop at step {self.step}: no validation improvement in {settings.patience} validations.")
                break
            if guard is not None and guard.requested is not None:
                progress.close()
                self._stop_for_preemption(guard)
        progress.close()

    def plan_task_chunks(self) -> str:
        """Resolve trainer.task_chunk (auto: from peaks measured on this step's meta-batch); what was chosen, in words.

        Every process calls it: measuring runs a step's collectives.
        """
        setting, size = self.settings.task_chunk, self.settings.meta_batch_size
        check_task_chunk(setting, size, self.shard.world_size)
        offset, local = self.shard.local_tasks(size)
        how = ""
        if setting == AUTO:
            batch = lambda: MetaBatches(self.source, size, offset, local, self.step, self.step + 1)[0].to(self.device)  # noqa: E731
            self.task_chunk, how = auto_task_chunk(
                self.objective, self.learner, self.optimizer, batch, self.device, self.settings.memory_budget_gb
            )
            how = f" (task_chunk=auto: {how})"
        else:
            self.task_chunk = setting
        self.chunks_planned = True
        per_process = f", {local} per process on {self.shard.world_size}" if self.shard.world_size > 1 else ""
        chunking = "all tasks at once" if self.task_chunk is None else f"task chunks of {self.task_chunk}"
        return f"meta-batch {size}{per_process}, {chunking}{how}"

    def _measures_share_now(self) -> bool:
        every = self.settings.grad_share_every
        return bool(every) and self.step % every == 0

    def _log_share(self, measured: tuple[float, float, float], progress: Progress) -> None:
        """Log ConML's gradient share of this step; warn once if the first measurements show it inert."""
        share, conml_norm, episodic_norm = measured
        if not all(math.isfinite(v) for v in measured):
            raise self._diverged(
                f"ConML's gradient share became non-finite (share {share}, ||grad ConML|| {conml_norm}, "
                f"||grad episodic|| {episodic_norm}) at step {self.step + 1}: the gradients overflowed, or the episodic "
                "loss has no gradient at all (as in a task with one class)"
            )
        self.grad_shares.append(share)
        self.tracker.log(
            {
                "train/conml_grad_share": share,
                "train/conml_grad_norm": conml_norm,
                "train/episodic_grad_norm": episodic_norm,
            },
            self.step + 1,
        )
        first = self.grad_shares[:MEASUREMENTS_BEFORE_VERDICT]
        if len(self.grad_shares) == MEASUREMENTS_BEFORE_VERDICT and max(first) < INERT_BELOW and self.shard.is_main:
            settings = self.objective.settings
            progress.write(inert_warning(first, settings.lam, self.learner.representations))

    def _warn_if_conml_dominates(self, means: dict[str, float], progress: Progress) -> None:
        """Warn once when ConML's term outweighs the episodic loss by orders of magnitude (a lambda far too large)."""
        conml, episodic = means.get("train/loss_conml"), means["train/loss_episodic"]
        if conml is None or self.dominance_warned or abs(conml) <= DOMINANCE_RATIO * max(abs(episodic), 1e-12):
            return
        self.dominance_warned = True
        if self.shard.is_main:
            progress.write(
                f"warning: ConML's term lambda*(d_in - d_out) = {conml:.4g} outweighs the episodic loss {episodic:.4g} "
                f"by more than {DOMINANCE_RATIO:g}x at step {self.step} (conml.lam={self.objective.settings.lam:g}); "
                "the meta-learner is then trained for the contrastive term, not for its tasks. Lower conml.lam "
                "(the paper uses 0.1 for images, 0.02 for in-context learning)."
            )

    def _stop_for_preemption(self, guard: PreemptionGuard) -> None:
        path = self.save("last")
        action = guard.hand_over()
        raise Preempted(guard.requested, self.step, self.settings.steps, path, action)

    def _out_of_patience(self) -> bool:
        return self.settings.patience is not None and self.stale_validations >= self.settings.patience

    def _validate(self) -> None:
        result = evaluate(
            self.learner,
            self.source,
            "val",
            self.settings.val_episodes,
            self.eval_batch_size,
            self.device,
            progress=False,
        )
        metric = self.source.kind.metric_name
        self.tracker.log({f"val/{metric}": result.mean, f"val/{metric}_ci95": result.ci95}, self.step)
        if self.source.kind.better(result.mean, self.best):
            self.best, self.stale_validations = result.mean, 0
            self.save("best")
            self.tracker.record_best(f"val/{metric}", result.mean, self.step)
        else:
            self.stale_validations += 1

    def _check_finite(self, means: dict[str, float]) -> None:
        if all(math.isfinite(v) for v in means.values()):
            return
        raise self._diverged(
            f"The meta-training loss became non-finite ({means}) within the {self.settings.log_every} steps "
            f"ending at step {self.step}"
        )

    def _diverged(self, what: str) -> TrainingDiverged:
        """The one-paragraph error for a run that diverged: what went non-finite, the last good checkpoint, the fixes."""
        last = self.checkpoint_dir / "last.pt"
        where = f"The last good checkpoint is {last}." if last.exists() else "No checkpoint was written before it."
        return TrainingDiverged(
            f"{what}. {where} Lower the learning rate (optimizer.lr / learner.inner_lr), "
            "set trainer.grad_clip, or resume from that checkpoint with different settings."
        )
