"""Surface distances between two binary masks, in mm, respecting anisotropic spacing.

Surfaces are the mask voxels with at least one face-neighbour outside the mask (the mask minus
its erosion with the 6-connected cross). Distances from each surface voxel of one mask to the
nearest surface voxel of the other come from a Euclidean distance transform with
``sampling=spacing``. Both masks are first cropped to the bounding box of their union (plus a
one-voxel background margin), which gives identical distances at a fraction of the cost on
large CT volumes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed distances (mm) from each surface voxel of one mask to the other mask's surface.

    Attributes:
        ref_to_pred: one distance per reference surface voxel.
        pred_to_ref: one distance per prediction surface voxel.
    """

    ref_to_pred: np.ndarray
    pred_to_ref: np.ndarray


def _crop_to_union(ref: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    union = ref | pred
    coords = np.nonzero(union)
    box = tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)
    # The margin keeps erosion treating the area outside the box (and the image) as background.
    return np.pad(ref[box], 1), np.pad(pred[box], 1)


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Boolean map of the mask's surface: voxels with a face-neighbour outside the mask.

    Args:
        mask: boolean array (any dimensionality).

    Returns:
        Boolean array of the same shape.
    """
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(ref: np.ndarray, pred: np.ndarray, spacing: Sequence[float]) -> SurfaceDistances:
    """Directed surface distances between two non-empty boolean masks.

    Args:
        ref: reference mask (Z, Y, X) bool, not empty.
        pred: predicted mask, same shape, not empty.
        spacing: voxel size in mm, array order.

    Returns:
        The two sets of directed distances.
    """
    ref_crop, pred_crop = _crop_to_union(ref.astype(bool), pred.astype(bool))
    ref_surface = surface_voxels(ref_crop)
    pred_surface = surface_voxels(pred_crop)
    sampling = tuple(float(s) for s in spacing)
    to_ref = ndimage.distance_transform_edt(~ref_surface, sampling=sampling)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=sampling)
    return SurfaceDistances(ref_to_pred=to_pred[ref_surface], pred_to_ref=to_ref[pred_surface])


def hausdorff_percentile(distances: SurfaceDistances, percentile: float = 95.0) -> float:
    """Symmetric percentile Hausdorff distance: the larger of the two directed percentiles (mm)."""
    return float(max(np.percentile(distances.ref_to_pred, percentile),
                     np.percentile(distances.pred_to_ref, percentile)))


def hausdorff_max(distances: SurfaceDistances) -> float:
    """Classic (100th percentile) symmetric Hausdorff distance in mm."""
    return float(max(distances.ref_to_pred.max(), distances.pred_to_ref.max()))


def normalized_surface_dice(distances: SurfaceDistances, tolerance_mm: float) -> float:
    """Share of surface voxels of both masks lying within ``tolerance_mm`` of the other surface.

    Voxel-counted (every surface voxel weighs the same), unlike the area-weighted variant.
    """
    # A float-rounding margin: distances exactly at the tolerance (common on regular grids) count.
    limit = tolerance_mm + 1e-6
    close = np.count_nonzero(distances.ref_to_pred <= limit) + np.count_nonzero(distances.pred_to_ref <= limit)
    return float(close / (distances.ref_to_pred.size + distances.pred_to_ref.size))
