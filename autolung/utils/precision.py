"""Whether this CPU runs bfloat16 natively, and a warning when bfloat16 is forced where it does not.

oneDNN runs bfloat16 convolutions at full speed only with AVX-512 BF16 or AMX. Elsewhere (AVX2
laptops and servers) it falls back to a reference path: one 3D convolution (64 channels, batch 2,
16x48x48, 1 thread) on an AVX2 EPYC took 82 s in bfloat16 autocast against 0.29 s in float32.
"auto" precision therefore picks float32 there, and an explicit bfloat16 request gets a warning.

Where bfloat16 is native, "auto" still checks it numerically once per process on a small
convolution of the model's own shapes (:func:`bf16_matches_float32`): bfloat16 3D convolutions
are silently wrong on some CPUs (pytorch issue 169688), and then float32 is used with a warning.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
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
                   "set `precision` to auto (float32 here) or float32")


# Relative L2 error of a bfloat16 convolution against float32 above which bfloat16 is refused.
# bfloat16 keeps 8 significant bits (relative rounding 2**-8 = 0.4 %); summed over a kernel the
# measured error stays near 0.5 %, so 5 % is wrong arithmetic, not rounding (pytorch #169688).
BF16_ERROR_BOUND = 0.05
# Spatial size of the probe's input per axis: small, so the check costs milliseconds where native.
PROBE_SIZE = 8


@dataclass(frozen=True)
class ConvolutionShape:
    """One convolution of a network: what the bfloat16 check reproduces.

    Attributes:
        in_channels: input channels.
        out_channels: output channels.
        kernel: kernel size per spatial axis (2 or 3 values).
    """

    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]


def convolution_shapes(network: torch.nn.Module) -> list[ConvolutionShape]:
    """The first and the widest convolution of ``network`` (one entry when they coincide).

    Args:
        network: any module holding Conv2d/Conv3d layers.

    Returns:
        Up to two shapes; empty when the network has no convolution.
    """
    convolutions = [m for m in network.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    if not convolutions:
        return []
    widest = max(convolutions, key=lambda m: m.in_channels * m.out_channels)
    shapes = [ConvolutionShape(c.in_channels, c.out_channels, tuple(c.kernel_size))
              for c in (convolutions[0], widest)]
    return list(dict.fromkeys(shapes))


def _bf16_and_float32(shape: ConvolutionShape, device_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One seeded convolution of ``shape`` in bfloat16 autocast and in float32."""
    generator = torch.Generator().manual_seed(0)
    dims = len(shape.kernel)
    inputs = torch.randn((1, shape.in_channels, *([PROBE_SIZE] * dims)), generator=generator)
    weight = torch.randn((shape.out_channels, shape.in_channels, *shape.kernel), generator=generator)
    weight /= float(np.sqrt(weight[0].numel()))
    convolve = torch.nn.functional.conv3d if dims == 3 else torch.nn.functional.conv2d
    inputs, weight = inputs.to(device_type), weight.to(device_type)
    with torch.inference_mode():
        reference = convolve(inputs, weight)
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            lowered = convolve(inputs, weight)
    return lowered.float().cpu(), reference.float().cpu()


def bf16_error(shape: ConvolutionShape, device_type: str) -> float:
    """Relative L2 error of a bfloat16-autocast convolution of ``shape`` against float32."""
    lowered, reference = _bf16_and_float32(shape, device_type)
    if not torch.isfinite(lowered).all():
        return float("inf")
    return float((lowered - reference).norm() / reference.norm().clamp_min(1e-12))


@functools.lru_cache(maxsize=32)
def bf16_matches_float32(shapes: tuple[ConvolutionShape, ...], device_type: str) -> bool:
    """Whether bfloat16 convolutions of ``shapes`` agree with float32 on ``device_type`` (once per process).

    Args:
        shapes: the network's convolution shapes (:func:`convolution_shapes`).
        device_type: "cpu" or "cuda".

    Returns:
        False, with a warning, when any error exceeds :data:`BF16_ERROR_BOUND`.
    """
    for shape in shapes:
        error = bf16_error(shape, device_type)
        logger.debug("bfloat16 check on %s for %s: relative error %.4f", device_type, shape, error)
        if not error <= BF16_ERROR_BOUND:
            logger.warning("bfloat16 convolutions are wrong on this %s: relative error %.3g against float32 "
                           "(bound %.2g) for %s; precision auto falls back to float32 (pytorch issue 169688)",
                           device_type, error, BF16_ERROR_BOUND, shape)
            return False
    return True
