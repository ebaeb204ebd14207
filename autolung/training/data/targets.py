"""Network targets from label patches, and their deep-supervision pyramid."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from autolung.labels import RegionMapping


def label_to_class_lookup(regions: RegionMapping) -> np.ndarray:
    """Lookup table label value -> class index (0 background, i + 1 for region i) for softmax losses.

    Args:
        regions: a disjoint region mapping.

    Returns:
        uint8 lookup of length max label + 1.
    """
    top = max([0, *(v for r in regions.regions for v in r)])
    lookup = np.zeros(top + 1, dtype=np.uint8)
    for index, region in enumerate(regions.regions):
        lookup[list(region)] = index + 1
    return lookup


def make_targets(seg: np.ndarray, regions: RegionMapping, loss: str) -> np.ndarray:
    """Targets for one batch of labels.

    Args:
        seg: (B, 1, *spatial) integer labels (negative values count as background).
        regions: the plans' region mapping.
        loss: "bce_dice" gives (B, R, *spatial) binary regions; "ce_dice" (B, 1, *spatial) class indices.

    Returns:
        uint8 targets. With an ignore label one more channel comes last: 1 where the voxel is
        annotated, 0 where it is not (the losses and the pseudo-Dice leave those voxels out).
    """
    labels = np.maximum(seg[:, 0], 0)
    annotated = regions.annotated(labels)
    if annotated is not None:
        labels = np.where(annotated, labels, 0)
    if loss == "ce_dice":
        lookup = label_to_class_lookup(regions)
        targets = lookup[np.minimum(labels, len(lookup) - 1)][:, None]
    else:
        targets = np.stack([regions.labels_to_targets(sample) for sample in labels])
    if annotated is None:
        return targets
    return np.concatenate([targets, annotated[:, None].astype(np.uint8)], axis=1)


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
