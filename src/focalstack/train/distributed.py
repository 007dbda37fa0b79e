"""torchrun / DistributedDataParallel support; a single process is simply world size 1.

Launch ``torchrun --nproc_per_node N "$(command -v focalstack)" train ...``: each process reads RANK,
WORLD_SIZE and LOCAL_RANK from the environment, joins a process group (NCCL on CUDA, gloo on CPU) and
trains its shard of every batch. Only rank 0 logs, validates and writes checkpoints.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job.

    Attributes:
        rank: global rank (0 = main process).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: this process's torch device.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError as err:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from err


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU; other names as given."""
    if device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun process group when launched by torchrun, else a one-process context.

    Args:
        device: "auto", "cpu", "cuda", ... (with torchrun, "cuda" means this rank's local GPU).

    Returns:
        The process's :class:`DistContext`.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank, dev)


def cleanup(ctx: DistContext) -> None:
    """Leave the process group (no-op for a single process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed torch, numpy and python with ``seed + rank`` (ranks differ; DDP syncs initial weights)."""
    s = seed + rank
    torch.manual_seed(s)
    np.random.seed(s % 2**32)  # noqa: NPY002 (the global RNG third-party code may use)
    random.seed(s)


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel when distributed (broadcasts rank 0's weights), else the model itself."""
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def average_gradients(params: list[nn.Parameter], ctx: DistContext) -> None:
    """Average the gradients of parameters outside the DDP wrapper over all ranks (no-op for one process).

    A missing gradient counts as zeros, so every rank makes the same collective calls.
    """
    if not ctx.distributed:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= ctx.world_size


def all_true(flag: bool, ctx: DistContext) -> bool:
    """True only if ``flag`` holds on every rank (keeps skip-step decisions identical across ranks)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def broadcast_float(value: float, ctx: DistContext) -> float:
    """Rank 0's ``value`` on every rank (e.g. its clock, so schedules stay identical)."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.broadcast(t, src=0)
    return float(t.item())


def any_true(flag: bool, ctx: DistContext) -> bool:
    """True if ``flag`` holds on any rank (e.g. rank 0's time budget ran out)."""
    return not all_true(not flag, ctx)


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for a single process)."""
    if ctx.distributed:
        dist.barrier()
