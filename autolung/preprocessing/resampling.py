"""Resampling of images, label maps and probabilities to a new grid.

Everything is done one axis at a time. A tensor-product B-spline is separable, so resampling
axis by axis with 1D splines gives the same result as a 3D spline while touching each voxel
``order + 1`` times per axis instead of ``(order + 1) ** 3`` times. That is also what makes the
anisotropic path natural: the in-plane axes get the configured spline order and the coarse axis
its own (usually nearest or linear) order.

Grid convention (as skimage ``resize`` and ``scipy.ndimage.zoom(grid_mode=True)``): voxel centres
are aligned so that the outer voxel *edges* of the old and new grids coincide. Output coordinate
``i`` of an axis resized from ``n`` to ``m`` samples the input at ``(i + 0.5) * n / m - 0.5``,
clamped to the input (edge values repeat). Nearest neighbour rounds ties up, as scipy's order 0
does, so an axis halved keeps the upper sample of each pair, as nnU-Net's resampling does.

Arrays stay float32 throughout; the only temporaries are one prefiltered copy and one output per
axis pass, so the peak is about three times the larger of input and output per channel.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import spline_filter1d

logger = logging.getLogger(__name__)

# nnU-Net's rule: a spacing ratio above 3 makes the coarse axis "out of plane".
ANISOTROPY_THRESHOLD = 3.0
SUPPORTED_ORDERS = (0, 1, 3)
# Slab size (elements) of the per-tap temporaries; 1M float32 = 4 MB.
CHUNK_ELEMENTS = 1 << 20


def compute_new_shape(shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]) -> tuple[int, ...]:
    """Shape after resampling from ``spacing`` to ``target_spacing`` (same physical extent).

    Args:
        shape: spatial shape (z, y, x).
        spacing: current voxel size (z, y, x) in mm.
        target_spacing: wanted voxel size (z, y, x) in mm.

    Returns:
        The new shape, at least 1 along every axis.
    """
    return tuple(max(1, int(round(s * sp / t))) for s, sp, t in zip(shape, spacing, target_spacing))


def find_anisotropic_axis(spacing: Sequence[float], target_spacing: Sequence[float],
                          configured: int | None = None) -> int | None:
    """The coarse axis to treat separately, or None for isotropic resampling.

    Args:
        spacing: original spacing (z, y, x).
        target_spacing: target spacing (z, y, x).
        configured: the plan's ``anisotropic_axis``; wins when set.

    Returns:
        Axis index (0..2) or None. Without a configured axis, the original spacing decides
        first and then the target spacing, each by the ratio threshold of 3.
    """
    if configured is not None:
        return int(configured)
    for candidate in (spacing, target_spacing):
        values = np.asarray(candidate, dtype=float)
        if values.max() / values.min() > ANISOTROPY_THRESHOLD:
            return int(np.argmax(values))
    return None


def axis_orders(anisotropic_axis: int | None, order: int, order_out_of_plane: int) -> list[int]:
    """Interpolation order per axis: ``order`` in-plane, ``order_out_of_plane`` along the coarse axis."""
    orders = [order] * 3
    if anisotropic_axis is not None:
        orders[anisotropic_axis] = order_out_of_plane
    return orders


def resample_volume(volume: np.ndarray, new_shape: Sequence[int], orders: Sequence[int],
                    out: np.ndarray | None = None) -> np.ndarray:
    """Resample one 3D float volume, axis by axis.

    Args:
        volume: ``(Z, Y, X)`` array (any float or integer dtype; computed in float32).
        new_shape: wanted ``(Z', Y', X')``.
        orders: interpolation order per axis, each 0 (nearest), 1 (linear) or 3 (cubic spline).
        out: optional float32 array (or view) of ``new_shape`` that receives the result, which
            saves one output-sized temporary.

    Returns:
        float32 ``(Z', Y', X')``: ``out`` when given, else a new array, or ``volume`` itself
        (as float32) when the shape is unchanged.
    """
    current = volume if volume.dtype == np.float32 else volume.astype(np.float32)
    # Shrinking axes first keeps the later passes on smaller arrays.
    ratios = [new_shape[a] / volume.shape[a] for a in range(3)]
    passes = [a for a in sorted(range(3), key=lambda a: ratios[a]) if volume.shape[a] != new_shape[a]]
    for index, axis in enumerate(passes):
        target = out if index == len(passes) - 1 else None
        current = resample_axis(current, axis, int(new_shape[axis]), orders[axis], out=target)
    if out is not None and not passes:
        out[...] = current
        return out
    return current


def resample_axis(array: np.ndarray, axis: int, new_length: int, order: int,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Resample a float32 array along one axis with a 1D B-spline of ``order`` 0, 1 or 3.

    Args:
        array: float32 array of any dimensionality.
        axis: the axis to resample.
        new_length: its new length.
        order: 0 nearest, 1 linear, 3 cubic B-spline (interpolating, with prefilter).
        out: optional float32 array (or view) of the result's shape to write into.

    Returns:
        The resampled float32 array (``out`` when given); the other axes are unchanged.
    """
    if order not in SUPPORTED_ORDERS:
        raise ValueError(f"interpolation order {order} is not supported; use one of {SUPPORTED_ORDERS}")
    length = array.shape[axis]
    coords = (np.arange(new_length, dtype=np.float64) + 0.5) * (length / new_length) - 0.5
    coords = np.clip(coords, 0, length - 1)
    source = array
    if order == 0 or length == 1:
        # Ties round up (floor(x + 0.5)), as scipy's order-0 interpolation does: halving an axis
        # samples every coordinate at a tie, and nnU-Net keeps the upper slice of each pair.
        taps, weights = np.floor(coords + 0.5).astype(np.intp)[None], np.ones((1, new_length))
    elif order == 1:
        base = np.floor(coords).astype(np.intp)
        taps, weights = _linear_taps(base, coords - base, length)
    else:
        base = np.floor(coords).astype(np.intp)
        taps, weights = _cubic_taps(base, coords - base, length)
        # Interpolating (not smoothing) spline: coefficients first, mirrored at the edges.
        source = spline_filter1d(array, order=3, axis=axis, output=np.float32, mode="mirror")
    return _weighted_gather(source, axis, taps, weights, out)


def _linear_taps(base: np.ndarray, frac: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    upper = np.minimum(base + 1, length - 1)
    return np.stack([base, upper]), np.stack([1.0 - frac, frac])


def _cubic_taps(base: np.ndarray, frac: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    t = frac
    weights = np.stack([
        (1 - t) ** 3 / 6,
        (3 * t ** 3 - 6 * t ** 2 + 4) / 6,
        (-3 * t ** 3 + 3 * t ** 2 + 3 * t + 1) / 6,
        t ** 3 / 6,
    ])
    taps = np.stack([_mirror(base + k, length) for k in (-1, 0, 1, 2)])
    return taps, weights


def _mirror(index: np.ndarray, length: int) -> np.ndarray:
    """Whole-sample symmetric extension (scipy's 'mirror'): -1 -> 1, n -> n - 2."""
    period = 2 * (length - 1)
    index = np.abs(index) % period
    return np.where(index > length - 1, period - index, index)


def _weighted_gather(source: np.ndarray, axis: int, taps: np.ndarray, weights: np.ndarray,
                     out: np.ndarray | None = None) -> np.ndarray:
    """``sum_k weights[k] * source[taps[k]]`` along ``axis``, accumulated in float32.

    Works in slabs along another axis so the per-tap temporary stays small (about
    ``CHUNK_ELEMENTS``) instead of the size of the output.
    """
    out_shape = list(source.shape)
    out_shape[axis] = taps.shape[1]
    if out is None:
        out = np.empty(out_shape, dtype=np.float32)
    elif list(out.shape) != out_shape:
        raise ValueError(f"out has shape {out.shape}, expected {tuple(out_shape)}")
    shape = [1] * source.ndim
    shape[axis] = taps.shape[1]
    factors = [w.astype(np.float32).reshape(shape) for w in weights]
    chunk_axis = 0 if axis != 0 or source.ndim == 1 else 1
    per_index = max(1, int(np.prod(out_shape)) // max(1, out_shape[chunk_axis]))
    step = max(1, CHUNK_ELEMENTS // per_index)
    for start in range(0, out_shape[chunk_axis], step):
        region = [slice(None)] * source.ndim
        region[chunk_axis] = slice(start, start + step)
        region = tuple(region)
        part = source[region]
        target = out[region]
        if taps.shape[0] == 1:  # nearest neighbour: a plain gather
            target[...] = np.take(part, taps[0], axis=axis)
            continue
        np.multiply(np.take(part, taps[0], axis=axis), factors[0], out=target)
        for k in range(1, taps.shape[0]):
            term = np.take(part, taps[k], axis=axis)
            term *= factors[k]
            target += term
    return out


def resample_image(data: np.ndarray, new_shape: Sequence[int], order: int = 3, anisotropic_axis: int | None = None,
                   order_out_of_plane: int = 0) -> np.ndarray:
    """Resample a ``(C, Z, Y, X)`` image channel by channel.

    Args:
        data: image, any dtype (computed and returned as float32).
        new_shape: spatial target shape.
        order: spline order in-plane (all axes when isotropic).
        anisotropic_axis: coarse axis resampled with ``order_out_of_plane``, or None.
        order_out_of_plane: order along the coarse axis.

    Returns:
        float32 ``(C, *new_shape)``; the input (as float32) when the shape is unchanged.
    """
    if tuple(data.shape[1:]) == tuple(new_shape):
        return data if data.dtype == np.float32 else data.astype(np.float32)
    orders = axis_orders(anisotropic_axis, order, order_out_of_plane)
    out = np.empty((data.shape[0], *new_shape), dtype=np.float32)
    for channel in range(data.shape[0]):
        out[channel] = resample_volume(data[channel], new_shape, orders)
    return out


def resample_labels(seg: np.ndarray, new_shape: Sequence[int], anisotropic_axis: int | None = None,
                    order_out_of_plane: int = 0) -> np.ndarray:
    """Resample an integer label map without creating or losing classes.

    Each class is resampled as a one-hot channel with linear interpolation (``order_out_of_plane``
    along the coarse axis) and every voxel takes the class with the highest value; only one
    channel and the running maximum are held at a time. A class present before but outvoted
    everywhere afterwards (thinner than a new voxel) keeps the new voxels that contain its old
    voxels, so no class disappears.

    Args:
        seg: ``(Z, Y, X)`` integer labels.
        new_shape: spatial target shape.
        anisotropic_axis: coarse axis, or None.
        order_out_of_plane: order along the coarse axis (0 or 1).

    Returns:
        int8 ``(*new_shape)`` (uint8 when a label exceeds 127).
    """
    low, high = (int(seg.min()), int(seg.max())) if seg.size else (0, 0)
    dtype = np.int8 if -128 <= low and high <= 127 else np.uint8
    if tuple(seg.shape) == tuple(new_shape):
        return seg.astype(dtype, copy=True)
    classes = present_labels(seg)
    orders = axis_orders(anisotropic_axis, 1, order_out_of_plane)
    best_value = np.full(tuple(new_shape), -1.0, dtype=np.float32)
    out = np.zeros(tuple(new_shape), dtype=dtype)
    for value in classes:
        one_hot = resample_volume((seg == value).astype(np.float32), new_shape, orders)
        wins = one_hot > best_value
        out[wins] = value
        np.maximum(best_value, one_hot, out=best_value)
    for value in np.setdiff1d(classes, present_labels(out)):
        # Rare: a class thinner than a new voxel, outvoted (or missed by every sample point).
        # It keeps the new voxels that contain its old voxels.
        logger.debug("label %d vanished when resampling; keeping the voxels that contain it", value)
        coords = np.nonzero(seg == value)
        mapped = tuple(np.minimum(((c + 0.5) * (m / n)).astype(np.intp), m - 1)
                       for c, n, m in zip(coords, seg.shape, new_shape))
        out[mapped] = value
    return out


def present_labels(seg: np.ndarray) -> np.ndarray:
    """Sorted label values occurring in ``seg``; a histogram for small non-negative labels (far
    faster than ``np.unique``'s sort or hash on large volumes)."""
    if seg.size and np.issubdtype(seg.dtype, np.integer) and 0 <= int(seg.min()) and int(seg.max()) < 65536:
        return np.flatnonzero(np.bincount(seg.reshape(-1).view(np.uint8) if seg.dtype == np.int8
                                          else seg.reshape(-1)))
    return np.unique(seg)


def resample_probabilities(probabilities: np.ndarray, new_shape: Sequence[int], order: int = 1,
                           anisotropic_axis: int | None = None, order_out_of_plane: int | None = None,
                           out: np.ndarray | None = None) -> np.ndarray:
    """Resample per-region probabilities (or logits) ``(R, Z, Y, X)`` channel by channel.

    Args:
        probabilities: network output on the preprocessed grid.
        new_shape: spatial target shape.
        order: order in-plane (1 linear or 3 cubic).
        anisotropic_axis: coarse axis, or None.
        order_out_of_plane: order along the coarse axis; defaults to ``order``.
        out: optional float32 ``(R, *new_shape)`` array to write into.

    Returns:
        float32 ``(R, *new_shape)`` (``out`` when given).
    """
    if out is None:
        out = np.empty((probabilities.shape[0], *new_shape), dtype=np.float32)
    orders = axis_orders(anisotropic_axis, order, order if order_out_of_plane is None else order_out_of_plane)
    for channel in range(probabilities.shape[0]):
        out[channel] = resample_volume(probabilities[channel], new_shape, orders)
    return out
