"""Generated lesions with known answers, on grids with anisotropic spacing and oblique directions."""
from __future__ import annotations

import math

import numpy as np

from autolung.io.geometry import ImageGeometry


def rotation(axis: str, degrees: float) -> np.ndarray:
    """A 3x3 rotation about the x, y or z axis."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    matrices = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]], "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
                "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}
    return np.asarray(matrices[axis], dtype=float)


def oblique_direction() -> tuple[float, ...]:
    """A direction matrix tilted 20 degrees about x and 15 about z (still mostly axial)."""
    return tuple(float(v) for v in (rotation("z", 15.0) @ rotation("x", 20.0)).ravel())


def geometry(shape: tuple[int, int, int], spacing: tuple[float, float, float],
             direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
             origin: tuple[float, float, float] = (-120.0, 40.0, 15.0)) -> ImageGeometry:
    return ImageGeometry(shape=shape, spacing=spacing, origin=origin, direction=tuple(float(d) for d in direction))


def ellipsoid(shape: tuple[int, int, int], spacing: tuple[float, float, float], centre_zyx: tuple[float, float, float],
              semi_axes_mm: tuple[float, float, float], in_plane_degrees: float = 0.0) -> np.ndarray:
    """Voxels whose centres lie in an ellipsoid (semi-axes along the rotated x, y and the z index axes).

    ``centre_zyx`` is a (fractional) array index; the ellipse in each slice is rotated by
    ``in_plane_degrees``. Distances are in index space times spacing, which is physical space for any
    orthonormal direction matrix.
    """
    z, y, x = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    dz = (z - centre_zyx[0]) * spacing[0]
    dy = (y - centre_zyx[1]) * spacing[1]
    dx = (x - centre_zyx[2]) * spacing[2]
    c, s = math.cos(math.radians(in_plane_degrees)), math.sin(math.radians(in_plane_degrees))
    u, v = c * dx + s * dy, -s * dx + c * dy
    a, b, h = semi_axes_mm
    return (u / a) ** 2 + (v / b) ** 2 + (dz / h) ** 2 <= 1.0
