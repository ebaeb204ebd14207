"""Voxel index <-> patient coordinates for an :class:`ImageGeometry`.

Index order is the array's (z, y, x); ITK's direction matrix has one column per index axis in
(x, y, z) order, and patient coordinates are LPS (+x towards the patient's left, +y posterior,
+z head). Because the direction matrix is orthonormal, distances in "scaled index space"
(index times spacing) equal distances in patient space: measurements are taken there, and only
positions (centroids, sides) need the full transform.
"""
from __future__ import annotations

import numpy as np

from autolung.errors import InvalidInputError
from autolung.io.geometry import ImageGeometry

ORTHONORMAL_TOLERANCE = 1e-3


def direction_matrix(geometry: ImageGeometry) -> np.ndarray:
    """The 3x3 direction matrix (columns: index axes x, y, z), checked to be orthonormal.

    Args:
        geometry: a 3D image geometry.

    Returns:
        The matrix as float64.

    Raises:
        InvalidInputError: for a 2D geometry or a sheared (non-orthonormal) direction, where
            distances in index space would not be physical distances.
    """
    if geometry.is_2d or len(geometry.direction) != 9:
        raise InvalidInputError("lesion measurements need a 3D image (this one is 2D)")
    matrix = np.asarray(geometry.direction, dtype=float).reshape(3, 3)
    if not np.allclose(matrix.T @ matrix, np.eye(3), atol=ORTHONORMAL_TOLERANCE):
        raise InvalidInputError(f"image direction {tuple(geometry.direction)} is not orthonormal (sheared grid); "
                                "resample it to an orthogonal grid before measuring")
    return matrix


def index_to_patient(geometry: ImageGeometry, zyx: np.ndarray) -> np.ndarray:
    """Patient (LPS, mm) coordinates of array indices.

    Args:
        geometry: the image geometry.
        zyx: ``(N, 3)`` or ``(3,)`` array indices in (z, y, x) order (fractional allowed).

    Returns:
        ``(N, 3)`` or ``(3,)`` LPS coordinates (x, y, z) in mm.
    """
    points = np.atleast_2d(np.asarray(zyx, dtype=float))
    xyz_index = points[:, ::-1]
    spacing_xyz = np.asarray(geometry.spacing, dtype=float)[::-1]
    patient = np.asarray(geometry.origin, dtype=float) + (xyz_index * spacing_xyz) @ direction_matrix(geometry).T
    return patient[0] if np.ndim(zyx) == 1 else patient


def slice_normal(geometry: ImageGeometry) -> np.ndarray:
    """Unit vector (LPS) of increasing slice index (the array's z axis)."""
    return direction_matrix(geometry)[:, 2]
