"""Cropping to the bounding box of nonzero voxels, and the inverse (un-cropping).

Bounding boxes are ``[[z0, z1], [y0, y1], [x0, x1]]`` with exclusive ends, in array order.
"""
from __future__ import annotations

import numpy as np

BBox = list[list[int]]


def nonzero_bbox(image: np.ndarray) -> BBox:
    """Bounding box of voxels that are nonzero in any channel.

    Args:
        image: ``(C, Z, Y, X)`` array.

    Returns:
        ``[[z0, z1], [y0, y1], [x0, x1]]`` (exclusive ends); the full extent when the image is
        all zero, so that an empty image still yields a valid (uncropped) case.
    """
    spatial = image.shape[1:]
    # Projections per axis instead of np.argwhere: no index array the size of the image.
    mask = image[0] != 0
    for channel in image[1:]:
        mask |= channel != 0
    bbox: BBox = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return [[0, int(s)] for s in spatial]
        bbox.append([int(hits[0]), int(hits[-1]) + 1])
    return bbox


def crop_to_bbox(array: np.ndarray, bbox: BBox) -> np.ndarray:
    """View of ``array`` inside ``bbox``; the last three axes are the spatial ones.

    Args:
        array: ``(..., Z, Y, X)`` array.
        bbox: box from :func:`nonzero_bbox`.

    Returns:
        A view (no copy) of the cropped region.
    """
    slices = tuple(slice(lo, hi) for lo, hi in bbox)
    return array[(Ellipsis, *slices)]


def uncrop(array: np.ndarray, bbox: BBox, full_shape: tuple[int, ...] | list[int], fill: float = 0) -> np.ndarray:
    """Put a cropped ``(..., z, y, x)`` array back into a ``full_shape`` spatial grid.

    Args:
        array: cropped array; leading (channel) axes are kept.
        bbox: the box it was cropped with.
        full_shape: spatial shape ``(Z, Y, X)`` before cropping.
        fill: value outside the box.

    Returns:
        New array of shape ``(*array.shape[:-3], *full_shape)`` and the dtype of ``array``.
    """
    out = np.full((*array.shape[:-3], *full_shape), fill, dtype=array.dtype)
    out[(Ellipsis, *(slice(lo, hi) for lo, hi in bbox))] = array
    return out


def is_full_bbox(bbox: BBox, shape: tuple[int, ...] | list[int]) -> bool:
    """True when ``bbox`` covers the whole spatial ``shape`` (nothing was cropped)."""
    return all(lo == 0 and hi == s for (lo, hi), s in zip(bbox, shape))
