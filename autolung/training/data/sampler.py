"""Patch sampling with foreground oversampling.

A forced-foreground patch is centred on a random voxel of a random class present in the case
(``class_locations``). Other patches are placed uniformly, allowing them to reach half a patch
beyond the image so borders are seen as often as the centre. Whatever does not fit in the image
is zero-padded. For 2D configurations a slice is chosen first (the forced voxel's slice, or a
random one), then a 2D patch in it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autolung.training.augmentation.base import Sample
from autolung.training.data.cases import Case


def forced_foreground_flags(batch_size: int, oversample: float) -> list[bool]:
    """Which samples of a (global) batch are forced to contain foreground.

    The last ``batch_size - round(batch_size * (1 - oversample))`` samples are forced; with the
    default third and a batch of 2 that is the second sample (as in nnU-Net).

    Args:
        batch_size: global batch size.
        oversample: fraction to force.

    Returns:
        One flag per sample.
    """
    first_forced = round(batch_size * (1 - oversample))
    return [index >= first_forced for index in range(batch_size)]


def pick_foreground_voxel(case: Case, rng: np.random.Generator) -> np.ndarray | None:
    """A random voxel (z, y, x) of a random class present in ``case``; None when there is none.

    Args:
        case: the case (its ``class_locations`` property).
        rng: randomness.

    Returns:
        The voxel or None.
    """
    locations = case.properties.get("class_locations") or {}
    present = sorted((k for k, v in locations.items() if len(v) > 0), key=str)
    if not present:
        return None
    voxels = locations[present[int(rng.integers(len(present)))]]
    return np.asarray(voxels[int(rng.integers(len(voxels)))], dtype=int)


def _lower_corner(shape: Sequence[int], size: Sequence[int], centre: np.ndarray | None,
                  rng: np.random.Generator) -> list[int]:
    corner = []
    for axis, (length, patch) in enumerate(zip(shape, size)):
        need = max(patch - length, 0)
        # Patches may stick out by half of what is missing (small images) on either side.
        low = -(need // 2)
        high = length + need // 2 + need % 2 - patch
        if centre is None:
            corner.append(int(rng.integers(low, high + 1)))
        else:
            corner.append(int(np.clip(centre[axis] - patch // 2, low, high)))
    return corner


def crop_padded(array: np.ndarray, corner: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """``array[:, corner:corner+size]`` over the spatial axes, zero-padded where outside.

    Args:
        array: (C, *spatial), possibly a memory map.
        corner: lower corner (may be negative).
        size: crop size.

    Returns:
        A new array of shape (C, *size) with ``array``'s dtype.
    """
    out = np.zeros((array.shape[0], *size), dtype=array.dtype)
    source, target = [slice(None)], [slice(None)]
    for start, length, extent in zip(corner, size, array.shape[1:]):
        lo, hi = max(start, 0), min(start + length, extent)
        source.append(slice(lo, max(hi, lo)))
        target.append(slice(lo - start, lo - start + max(hi - lo, 0)))
    out[tuple(target)] = array[tuple(source)]
    return out


def sample_patch(case: Case, size: Sequence[int], force_foreground: bool, rng: np.random.Generator) -> Sample:
    """Read one patch of ``size`` (2 or 3 values) from ``case``.

    Args:
        case: the case.
        size: spatial patch size; 2 values sample a 2D patch from one slice.
        force_foreground: centre on a foreground voxel when the case has one.
        rng: randomness.

    Returns:
        A :class:`Sample` with float32 data and int8 labels.
    """
    voxel = pick_foreground_voxel(case, rng) if force_foreground else None
    data, seg = case.data, case.seg
    if len(size) == 2:
        z = int(voxel[0]) if voxel is not None else int(rng.integers(data.shape[1]))
        data, seg = data[:, z], seg[:, z]
        voxel = voxel[1:] if voxel is not None else None
    corner = _lower_corner(data.shape[1:], size, voxel, rng)
    return Sample(crop_padded(data, corner, size).astype(np.float32, copy=False),
                  crop_padded(seg, corner, size).astype(np.int8, copy=False))
