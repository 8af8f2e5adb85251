"""Spread each meta-batch's tasks over processes (torchrun): process r holds tasks r*b .. r*b+b-1.

ConML's d_out compares every task with every other, so the whole-task representations are
all-gathered by `AllGather`, an autograd Function over the stable `dist.all_gather` and
`dist.all_reduce`: its backward sums the gradient of the gathered rows over processes and hands each
process the rows it owns. (PyTorch's own autograd-aware gathers, in `torch.distributed.nn` and
`torch.distributed._functional_collectives`, are private or deprecated depending on the version.)
Each process's loss is its share of the global loss, and summing the processes' gradients gives
exactly the single-process meta-gradient of the whole meta-batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from conml.errors import ConfigError


@dataclass(frozen=True)
class TaskShard:
    """This process's place among `world_size` processes sharing a meta-batch."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_tasks(self, meta_batch_size: int) -> tuple[int, int]:
        """(offset, count) of this process's tasks within a meta-batch."""
        if meta_batch_size % self.world_size:
            raise ConfigError(
                f"trainer.meta_batch_size={meta_batch_size} does not split evenly over {self.world_size} processes; "
                "choose a multiple of the number of processes."
            )
        count = meta_batch_size // self.world_size
        return self.rank * count, count

    def gather(self, local: Tensor) -> Tensor:
        """Every process's rows, in rank order; gradients flow back to each row's owner."""
        if self.world_size == 1:
            return local
        return AllGather.apply(local)

    def sum_gradients(self, parameters) -> None:
        """Sum gradients over processes (each process's loss is its share of the global loss)."""
        self.sum_tensors([p.grad for p in parameters if p.grad is not None])

    def sum_tensors(self, tensors: list[Tensor]) -> list[Tensor]:
        """Sum each tensor over processes, in place; returns them."""
        if self.world_size > 1:
            for tensor in tensors:
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensors


class AllGather(torch.autograd.Function):
    """Concatenate every process's equally shaped tensor along dim 0, in rank order, differentiably."""

    @staticmethod
    def forward(ctx, local: Tensor) -> Tensor:
        ctx.rows = local.shape[0]
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        # Every process's loss reaches every row: a row's gradient is the sum over processes.
        grad = grad.clone(memory_format=torch.contiguous_format)  # autograd's buffer is not ours to overwrite
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        first = dist.get_rank() * ctx.rows
        return grad[first : first + ctx.rows]


def join_process_group(device: torch.device, world_size: int, local_rank: int) -> tuple[TaskShard, torch.device]:
    """Join the process group torchrun starts (`world_size` processes; a single process needs none), and the
    device this process uses: its own GPU (`local_rank`) when running on CUDA."""
    if world_size == 1:
        return TaskShard(), device
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return TaskShard(dist.get_rank(), dist.get_world_size()), device
