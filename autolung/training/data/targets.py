"""Network targets from label patches, and their deep-supervision pyramid."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from autolung.labels import RegionMapping
from autolung.output_kind import OutputKind, as_output_kind


def make_targets(seg: np.ndarray, regions: RegionMapping, kind: OutputKind | str) -> np.ndarray:
    """Targets for one batch of labels, as ``kind`` encodes them (:meth:`OutputKind.targets`).

    Args:
        seg: (B, 1, *spatial) integer labels (negative values count as background).
        regions: the plans' region mapping.
        kind: the output kind, or its loss name: sigmoid regions give (B, R, *spatial) binary
            regions; softmax classes (B, 1, *spatial) class indices.

    Returns:
        uint8 targets. With an ignore label one more channel comes last: 1 where the voxel is
        annotated, 0 where it is not (the losses and the pseudo-Dice leave those voxels out).
    """
    return as_output_kind(kind).targets(seg, regions)


def downsample_targets(target: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Nearest-neighbour pyramid of ``target`` matching each output's spatial shape.

    The value at the centre of each pooling window is taken, which for binary region targets and
    class maps is the same choice nnU-Net's nearest-neighbour resize makes.

    Args:
        target: (B, K, *spatial).
        shapes: spatial shapes of the network outputs, highest resolution first.

    Returns:
        One target per output.
    """
    full = target.shape[2:]
    pyramid = []
    for shape in shapes:
        index = [slice(None), slice(None)]
        for length, out in zip(full, shape):
            step = length // out
            index.append(slice(step // 2, step // 2 + step * out, step))
        pyramid.append(target[tuple(index)])
    return pyramid
