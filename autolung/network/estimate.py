"""Feature-map memory estimate of a planned U-Net, without building it.

The planner calls :func:`estimate_feature_map_elements` hundreds of times while shrinking a
patch, so it is pure arithmetic. It counts, per sample, the elements of every output that the
network keeps for the backward pass and that grows with the patch: each conv-norm-act block,
each residual projection shortcut, each transposed convolution and each segmentation head
(the modules marked ``counts_feature_map`` in :mod:`autolung.network.blocks`). Norm and
activation copies are proportional to these, so a calibrated reference absorbs them. The
definition matches nnU-Net's ``compute_conv_feature_map_size``, which lets the planner reuse
its calibration (560e6 elements at batch 2 for 8 GB in 3D).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from autolung.planning.plans import ArchitecturePlan


def _downsampled(size: Sequence[int], stride: Sequence[int]) -> list[int]:
    # Odd kernels with k//2 padding give ceil(n / s) outputs, for any n.
    return [math.ceil(n / s) for n, s in zip(size, stride)]


def _elements(channels: int, size: Sequence[int]) -> int:
    return channels * math.prod(size)


def _encoder_elements(arch: ArchitecturePlan, patch_size: Sequence[int]) -> tuple[int, list[list[int]]]:
    residual = arch.network == "resenc_unet"
    features = arch.features_per_stage
    total = _elements(features[0], patch_size) if residual else 0  # residual stem
    size = list(patch_size)
    previous = features[0]
    sizes = []
    for stage, width in enumerate(features):
        stride = arch.strides[stage]
        size = _downsampled(size, stride)
        sizes.append(size)
        blocks = arch.blocks_per_stage[stage]
        if residual:
            total += 2 * blocks * _elements(width, size)
            if previous != width or any(s != 1 for s in stride):
                total += _elements(width, size)  # projection shortcut of the first block
        else:
            total += blocks * _elements(width, size)
        previous = width
    return total, sizes


def estimate_feature_map_elements(arch: ArchitecturePlan, patch_size: Sequence[int], out_channels: int = 1,
                                  deep_supervision: bool = True) -> int:
    """Stored feature-map elements for one sample of ``patch_size`` (training forward pass).

    Args:
        arch: the topology.
        patch_size: spatial patch size, ``arch.dim`` entries.
        out_channels: channels of the segmentation heads.
        deep_supervision: count every head (training with deep supervision) or only the last.

    Returns:
        The element count; multiply by batch size and bytes per element for memory.
    """
    if len(patch_size) != arch.dim:
        raise ValueError(f"patch_size {list(patch_size)} does not match dim {arch.dim}")
    total, sizes = _encoder_elements(arch, patch_size)
    features = arch.features_per_stage
    n = arch.num_stages
    for step in range(n - 1):
        level = n - 2 - step
        size = sizes[level]
        total += _elements(features[level], size)  # transposed conv output
        total += arch.decoder_convs_per_stage[step] * _elements(features[level], size)
        if deep_supervision or step == n - 2:
            total += _elements(out_channels, size)
    return total
