"""The window grid of the sliding window and how each window's output is weighted.

- :func:`window_starts` (and :func:`compute_steps` per axis) place the windows: evenly spread
  starts per axis, at most ``step_size`` of a patch apart (nnU-Net's rule), every combination of
  them, in Z order of their starts (the order :mod:`autolung.inference.slab_stream` relies on);
- :func:`window_weights` is one window's weight map: autolung's Gaussian (a product of one factor
  per axis) or nnU-Net's truncated one, for imported nnU-Net models;
- :func:`separable_weight_sums` gives the sum of autolung's weights over the whole grid as three
  per-axis profiles, so no weight volume is held.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache

import numpy as np


def compute_steps(size: int, patch: int, step_size: float) -> list[int]:
    """Start positions of windows along one axis, evenly spread so the last one ends at ``size``.

    Args:
        size: length of the (padded) axis; at least ``patch``.
        patch: window length along the axis.
        step_size: window stride as a fraction of ``patch`` (0.5 = half-patch overlap).

    Returns:
        Sorted start positions; the first is 0, the last is ``size - patch``.
    """
    if size <= patch:
        return [0]
    target_stride = max(1.0, patch * step_size)
    num_steps = int(np.ceil((size - patch) / target_stride)) + 1
    return [int(round(v)) for v in np.linspace(0, size - patch, num_steps)]


def _gaussian_factor(length: int, sigma_scale: float) -> np.ndarray:
    """One axis's factor of autolung's window weight (float64, maximum 1)."""
    # A patch axis of length 1 (the Z axis of 2D windows) gets uniform weight.
    if length == 1:
        return np.ones(1)
    centre = (length - 1) / 2.0
    factor = np.exp(-0.5 * ((np.arange(length) - centre) / (length * sigma_scale)) ** 2)
    return factor / factor.max()


@lru_cache(maxsize=8)
def _gaussian_cached(patch: tuple[int, ...], sigma_scale: float) -> np.ndarray:
    grids = [_gaussian_factor(length, sigma_scale) for length in patch]
    weights = grids[0][:, None, None] * grids[1][None, :, None] * grids[2][None, None, :]
    # Zero weights would make border voxels of the volume undefined after division.
    weights[weights <= 0] = weights[weights > 0].min()
    return weights.astype(np.float32)


@lru_cache(maxsize=8)
def _nnunet_gaussian_cached(patch: tuple[int, ...], sigma_scale: float) -> np.ndarray:
    grids = []
    for length in patch:
        sigma = length * sigma_scale
        # nnU-Net filters a unit impulse at length // 2 with scipy's Gaussian, which truncates the
        # kernel at int(4 sigma + 0.5) voxels: the same separable product, zero beyond that radius.
        offsets = np.arange(length) - length // 2
        values = np.exp(-0.5 * (offsets / sigma) ** 2)
        values[np.abs(offsets) > int(4.0 * sigma + 0.5)] = 0.0
        grids.append(values)
    weights = grids[0][:, None, None] * grids[1][None, :, None] * grids[2][None, None, :]
    weights = weights / weights.max()
    weights[weights <= 0] = weights[weights > 0].min()
    return weights.astype(np.float32)


def window_weights(patch: Sequence[int], kind: str = "autolung") -> np.ndarray:
    """Weight map of one window: autolung's Gaussian or nnU-Net's (for imported nnU-Net models).

    nnU-Net centres its Gaussian on voxel ``length // 2`` (half a voxel off centre for even
    lengths) and truncates it at four sigma; reproducing that keeps imported models' overlapping
    windows blended exactly as nnU-Net blends them.

    Args:
        patch: window shape (z, y, x).
        kind: "autolung" or "nnunet".

    Returns:
        float32 array of shape ``patch``, maximum 1, no zeros.
    """
    if kind == "autolung":
        return gaussian_importance(patch)
    if kind == "nnunet":
        return _nnunet_gaussian_cached(tuple(int(p) for p in patch), 1.0 / 8)
    raise ValueError(f"window weights must be 'autolung' or 'nnunet', got {kind!r}")


def gaussian_importance(patch: Sequence[int], sigma_scale: float = 1.0 / 8) -> np.ndarray:
    """Gaussian weight map of shape ``patch`` (3 axes), maximum 1 at the centre, no zeros.

    Args:
        patch: window shape (z, y, x).
        sigma_scale: sigma as a fraction of the patch length per axis.

    Returns:
        float32 array of shape ``patch``.
    """
    return _gaussian_cached(tuple(int(p) for p in patch), float(sigma_scale))


def window_starts(shape: Sequence[int], patch: Sequence[int], step_size: float) -> list[tuple[slice, ...]]:
    """Every window of a grid over ``shape``, in Z order of their starts.

    Args:
        shape: the (padded) volume shape, at least ``patch``.
        patch: window shape.
        step_size: window stride as a fraction of the patch.

    Returns:
        One tuple of slices per window.
    """
    starts = [compute_steps(size, length, step_size) for size, length in zip(shape, patch)]
    return [tuple(slice(s, s + length) for s, length in zip(corner, patch))
            for corner in itertools.product(*starts)]


def separable_weight_sums(spatial: Sequence[int], patch: Sequence[int], step_size: float,
                          sigma_scale: float = 1.0 / 8) -> list[np.ndarray]:
    """Per-axis sums of autolung's Gaussian factors over the window starts along each axis.

    autolung's window weight is a product of one Gaussian per axis, and the windows form a grid
    (every combination of the per-axis starts), so the full tiling's weight sum at voxel
    ``(z, y, x)`` is the product of the three profiles: no weight volume needs to be held.

    Args:
        spatial: the (padded) volume shape ``(Z, Y, X)``, at least ``patch``.
        patch: window shape ``(z, y, x)``.
        step_size: window stride as a fraction of the patch.
        sigma_scale: sigma as a fraction of the patch length per axis.

    Returns:
        Three float64 arrays of lengths Z, Y and X.
    """
    profiles = []
    for size, length in zip(spatial, patch):
        factor, profile = _gaussian_factor(int(length), sigma_scale), np.zeros(int(size))
        for start in compute_steps(int(size), int(length), step_size):
            profile[start:start + int(length)] += factor
        profiles.append(profile)
    return profiles
