"""Pooling and kernel topology of a U-Net for a given spacing and patch size.

The rule (the idea of nnU-Net's ``get_pool_and_conv_props``): pool an axis while its feature map
stays at least ``min_edge`` voxels after pooling; pool only axes whose current spacing is within
2x of the finest pooled candidate, so a thick-slice axis is pooled later, once in-plane pooling
has made the voxels roughly isotropic; use kernel 1 along an axis whose spacing is still 2x or
more coarser than the finest; a lone poolable axis needs at least ``3 * min_edge`` voxels.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Topology:
    """Strides and kernels per stage, and the patch rounded up to be divisible by the total stride.

    Attributes:
        strides: per stage, stride per axis (stage 0 all ones).
        kernel_sizes: per stage, conv kernel per axis.
        patch_size: the patch, padded up to a multiple of ``divisor``.
        divisor: total stride per axis (2 ** pools per axis).
    """

    strides: list[list[int]]
    kernel_sizes: list[list[int]]
    patch_size: list[int]
    divisor: list[int]

    @property
    def num_stages(self) -> int:
        return len(self.strides)

    @property
    def pools_per_axis(self) -> list[int]:
        return [int(math.log2(d)) for d in self.divisor]


def _poolable_axes(size: Sequence[float], spacing: Sequence[float], min_edge: int) -> list[int]:
    candidates = [a for a in range(len(size)) if size[a] >= 2 * min_edge]
    if not candidates:
        return []
    finest = min(spacing[a] for a in candidates)
    candidates = [a for a in candidates if spacing[a] / finest < 2]
    if len(candidates) == 1 and size[candidates[0]] < 3 * min_edge:
        return []
    return candidates


def round_up(patch: Sequence[int], divisor: Sequence[int]) -> list[int]:
    """Each patch axis rounded up to a multiple of its divisor."""
    return [int(math.ceil(p / d) * d) for p, d in zip(patch, divisor)]


def compute_topology(spacing: Sequence[float], patch_size: Sequence[int], min_edge: int = 4,
                     max_stages: int = 6) -> Topology:
    """Pooling strides and conv kernels for ``patch_size`` at ``spacing``.

    Args:
        spacing: voxel spacing per axis (mm), same length as the patch.
        patch_size: the patch (voxels) per axis.
        min_edge: smallest feature-map edge after pooling.
        max_stages: at most this many stages (pooling steps + 1).

    Returns:
        The :class:`Topology`; its patch is ``patch_size`` rounded up to the total stride.
    """
    dim = len(spacing)
    current_spacing = [float(s) for s in spacing]
    size = [float(p) for p in patch_size]
    kernel = [1] * dim
    strides, kernels = [[1] * dim], []
    pools = [0] * dim
    while len(strides) < max_stages:
        axes = _poolable_axes(size, current_spacing, min_edge)
        if not axes:
            break
        finest = min(current_spacing)
        # Once an axis has a 3-kernel it keeps it; it gets one when within 2x of the finest spacing.
        kernel = [3 if k == 3 or current_spacing[d] / finest < 2 else 1 for d, k in enumerate(kernel)]
        kernels.append(list(kernel))
        stride = [2 if d in axes else 1 for d in range(dim)]
        for d in axes:
            pools[d] += 1
            current_spacing[d] *= 2
            size[d] = math.ceil(size[d] / 2)
        strides.append(stride)
    kernels.append([3] * dim)  # the bottleneck always sees neighbours along every axis
    divisor = [2 ** p for p in pools]
    return Topology(strides=strides, kernel_sizes=kernels, patch_size=round_up(patch_size, divisor),
                    divisor=divisor)
