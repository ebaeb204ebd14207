"""Whether this CPU runs bfloat16 natively, and a warning when bfloat16 is forced where it does not.

oneDNN runs bfloat16 convolutions at full speed only with AVX-512 BF16 or AMX. Elsewhere (AVX2
laptops and servers) it falls back to a reference path: one 3D convolution (64 channels, batch 2,
16x48x48, 1 thread) on an AVX2 EPYC took 82 s in bfloat16 autocast against 0.29 s in float32.
"auto" precision therefore picks float32 there, and an explicit bfloat16 request gets a warning.
"""
from __future__ import annotations

import functools
import logging

import torch

logger = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bfloat16 natively on this CPU (AVX-512 BF16 or AMX).

    Returns:
        Whether bfloat16 autocast pays off on CPU.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def warn_if_emulated_bf16(device_type: str) -> bool:
    """Log a warning when bfloat16 was requested on a CPU that only emulates it.

    Args:
        device_type: "cpu", "cuda", ...; only "cpu" can warn.

    Returns:
        True when the warning applies.
    """
    if device_type != "cpu" or cpu_has_native_bf16():
        return False
    _log_emulated_bf16_once()
    return True


@functools.lru_cache(maxsize=1)
def _log_emulated_bf16_once() -> None:
    # Once per process: prediction resolves the precision for every case.
    logger.warning("bfloat16 was requested, but this CPU has no native bfloat16 (AVX-512 BF16 or AMX): "
                   "oneDNN emulates it, which can be hundreds of times slower than float32; "
                   "use --precision auto (float32 here) or float32")
