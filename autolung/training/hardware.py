"""Device, precision, threads and determinism choices for a training run.

CPU precision was measured on this project's development machine (AMD EPYC, AVX-512 with bf16,
2 threads). A small 3D conv stack (batch 2, 40x56x40 patch, one SGD step): float32 0.82 s,
float32 + channels-last 0.52 s, bfloat16 autocast 0.20 s, bfloat16 + channels-last 0.20 s. The full
Task04 nnU-Net-plan U-Net (5.6 M parameters, same step, best of 3 rounds on a loaded machine):
float32 5.6 s, bfloat16 2.8 s, bfloat16 + channels-last 3.0 s. bfloat16 autocast is therefore the
CPU default where oneDNN supports it natively, and float32 elsewhere (``autolung.utils.precision``);
channels-last is not. Losses and the optimiser stay in float32 (see docs/training.md).
"""
from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

from autolung.errors import AutolungError
from autolung.utils.precision import cpu_has_native_bf16, warn_if_emulated_bf16

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """The torch device for ``--device`` ("auto" prefers CUDA, then MPS, then CPU).

    Args:
        name: "auto", "cpu", "cuda" or "mps".

    Returns:
        The device.

    Raises:
        AutolungError: when the requested device is not available.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AutolungError("`device` cuda requested but torch sees no CUDA GPU")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise AutolungError("`device` mps requested but MPS is not available")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype, or None for plain float32.

    Args:
        device: training device.
        precision: "auto", "float32", "bfloat16" or "float16".

    Returns:
        dtype or None.
    """
    if precision == "float32":
        return None
    if precision == "bfloat16":
        warn_if_emulated_bf16(device.type)
        return torch.bfloat16
    if precision == "float16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def use_channels_last(device: torch.device, dim: int, option: bool | None) -> bool:
    """Whether to use channels-last memory format.

    Args:
        device: training device.
        dim: 2 or 3.
        option: the user's choice, None = automatic (on for CUDA only).

    Returns:
        The decision.
    """
    if option is not None:
        return option
    # On CPU with bf16 autocast channels-last bought nothing for full U-Net steps and added layout
    # copies (see the module docstring); on CUDA it enables the tensor-core conv kernels.
    return device.type == "cuda"


def usable_cpu_count() -> int:
    """Cores this process may run on (its affinity mask: taskset, cgroup cpusets), not the machine's.

    Returns:
        At least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def default_num_workers(device: torch.device, cpu_count: int | None = None) -> int:
    """Augmentation worker processes when ``--num-workers`` is not given.

    On CPU the network competes with the workers for cores, so fewer are used.

    Returns:
        Worker count (at least 1 when there is more than one core).
    """
    cpus = cpu_count or usable_cpu_count()
    if cpus <= 1:
        return 0
    if device.type == "cpu":
        return max(1, min(4, cpus // 2))
    return max(1, min(12, cpus - 2))


def configure_threads(device: torch.device, num_threads: int | None) -> int:
    """Set torch's intra-op thread count (all cores on CPU unless told otherwise).

    Returns:
        The thread count in use.
    """
    if num_threads is None:
        cpus = usable_cpu_count()
        num_threads = cpus if device.type == "cpu" else min(4, cpus)
    torch.set_num_threads(max(1, num_threads))
    return torch.get_num_threads()


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed torch, NumPy and Python; in deterministic mode also force deterministic kernels.

    Returns:
        None.
    """
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
