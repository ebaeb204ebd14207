"""Distributed data-parallel training (torch DDP).

Two launch paths: ``torchrun`` (the process group comes from its environment, read by
``torch.distributed`` itself) or ``autolung train --num-gpus N``, which spawns N processes here.
CPU runs use the gloo backend, GPU runs NCCL. The global batch and its forced-foreground samples
are split across ranks so that N ranks together see the same batch composition as one process.
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from autolung.training.data.sampler import forced_foreground_flags

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the group.

    Attributes:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def split_batch(batch_size: int, oversample: float, rank: int, world_size: int) -> list[bool]:
    """Forced-foreground flags of this rank's share of the global batch.

    The global batch's flags (see :func:`forced_foreground_flags`) are cut into contiguous,
    nearly equal parts, one per rank.

    Args:
        batch_size: global batch size (at least ``world_size``).
        oversample: foreground fraction.
        rank: this rank.
        world_size: number of ranks.

    Returns:
        This rank's flags; their count is its local batch size.
    """
    if batch_size < world_size:
        raise ValueError(f"batch size {batch_size} is smaller than the number of processes {world_size}")
    flags = forced_foreground_flags(batch_size, oversample)
    base, extra = divmod(batch_size, world_size)
    start = rank * base + min(rank, extra)
    size = base + (1 if rank < extra else 0)
    return flags[start:start + size]


def free_port() -> int:
    """A free TCP port on localhost for the spawned process group.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def init_process_group(context: DistributedContext, device: torch.device, init_method: str | None) -> None:
    """Join the process group (gloo on CPU, NCCL on CUDA).

    Args:
        context: rank and world size.
        device: this rank's device.
        init_method: "tcp://host:port" for spawned runs; None reads torchrun's environment.

    Returns:
        None.
    """
    if not context.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {"backend": backend, "timeout": timedelta(minutes=30)}
    if init_method is not None:
        kwargs.update(init_method=init_method, rank=context.rank, world_size=context.world_size)
    dist.init_process_group(**kwargs)
    logger.info("rank %d/%d joined the %s process group", context.rank, context.world_size, backend)


def destroy_process_group() -> None:
    """Leave the process group when in one.

    Returns:
        None.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _for_backend(tensor: torch.Tensor) -> torch.Tensor:
    # NCCL only moves CUDA tensors; gloo only CPU ones.
    if dist.get_backend() == "nccl":
        return tensor.to(torch.device("cuda", torch.cuda.current_device()))
    return tensor.clone()


def all_reduce_mean(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Mean of ``values`` over ranks (identity without DDP).

    Returns:
        The averaged tensor.
    """
    if not context.enabled:
        return values
    values = _for_backend(values)
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values.cpu() / context.world_size


def all_reduce_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Sum of ``values`` over ranks (identity without DDP).

    Returns:
        The summed tensor.
    """
    if not context.enabled:
        return values
    values = _for_backend(values)
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values.cpu()


def broadcast_flag(flag: bool, context: DistributedContext) -> bool:
    """Rank 0's ``flag`` on every rank (used so all ranks stop on the same iteration).

    Returns:
        Rank 0's value.
    """
    if not context.enabled:
        return flag
    tensor = _for_backend(torch.tensor([1 if flag else 0], dtype=torch.int64))
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def parameter_digest(module: torch.nn.Module) -> torch.Tensor:
    """A float64 fingerprint of all parameters (sum and sum of squares weighted by position).

    Returns:
        Tensor of 2 values.
    """
    total = torch.zeros(2, dtype=torch.float64)
    for index, parameter in enumerate(module.parameters()):
        values = parameter.detach().double().cpu().flatten()
        total[0] += values.sum() * (index + 1)
        total[1] += (values * values).sum()
    return total


def check_replicas_identical(module: torch.nn.Module, context: DistributedContext) -> None:
    """Raise when the ranks' parameters differ (DDP must keep replicas in lockstep).

    Returns:
        None.
    """
    if not context.enabled:
        return
    digest = _for_backend(parameter_digest(module))
    gathered = [torch.zeros_like(digest) for _ in range(context.world_size)]
    dist.all_gather(gathered, digest)
    gathered = [g.cpu() for g in gathered]
    digest = digest.cpu()
    if any(not torch.equal(gathered[0], other) for other in gathered[1:]):
        raise RuntimeError(f"DDP replicas diverged: parameter digests {[g.tolist() for g in gathered]}")
    logger.info("DDP replicas identical across %d ranks (digest %s)", context.world_size, digest.tolist())


def spawn(worker: Callable[..., Any], num_processes: int, args: tuple[Any, ...]) -> None:
    """Run ``worker(rank, num_processes, init_method, *args)`` in ``num_processes`` processes.

    Args:
        worker: a module-level function.
        num_processes: world size.
        args: extra arguments (picklable).

    Returns:
        None; a failing rank's exception is re-raised here by torch.multiprocessing.
    """
    import torch.multiprocessing as tmp

    init_method = f"tcp://127.0.0.1:{free_port()}"
    tmp.spawn(worker, args=(num_processes, init_method, *args), nprocs=num_processes, join=True)
