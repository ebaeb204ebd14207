"""Rotation + scaling + centre crop in one resampling, and the enlarged patch it needs.

Patches are sampled larger than the network's patch (see :func:`initial_patch_size`) so that
rotating and zooming rarely pulls zeros from outside the sample; the transform always ends with a
centre crop to the final patch size. For strongly anisotropic 3D data the transform works in-plane
only (rotation around the coarse axis, scaling of the two fine axes): through-plane resampling
would blur the few slices there are.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from batchgenerators.augmentations.utils import (
    create_matrix_rotation_2d,
    create_matrix_rotation_x_3d,
    create_matrix_rotation_y_3d,
    create_matrix_rotation_z_3d,
    create_zero_centered_coordinate_mesh,
    interpolate_img,
)

from autolung.training.augmentation.base import RandomTransform, Sample

# Patches are enlarged as if zoomed out to this scale (nnU-Net uses the same bound).
ENLARGE_FOR_SCALE = 0.85


@dataclass(frozen=True)
class AffineParams:
    """A linear map from output to input coordinates (rotation times scale)."""

    matrix: np.ndarray


def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """Rotation matrix: one angle (2D) or three angles about axes 0, 1, 2 (3D), in radians.

    Args:
        angles: the angles.

    Returns:
        (D, D) rotation matrix.
    """
    if len(angles) == 1:
        return create_matrix_rotation_2d(angles[0])
    matrix = np.eye(3)
    # batchgenerators names axes x, y, z for array axes 0, 1, 2.
    matrix = create_matrix_rotation_x_3d(angles[0], matrix)
    matrix = create_matrix_rotation_y_3d(angles[1], matrix)
    return create_matrix_rotation_z_3d(angles[2], matrix)


def affine_crop(sample: Sample, matrix: np.ndarray | None, patch_size: Sequence[int]) -> Sample:
    """Deterministic twin: resample the centre of ``sample`` through ``matrix`` into ``patch_size``.

    Args:
        sample: the (enlarged) patch.
        matrix: output-to-input linear map about the patch centre; None = plain centre crop.
        patch_size: output spatial shape.

    Returns:
        Image by cubic interpolation, labels by nearest neighbour, zeros outside.
    """
    if matrix is None:
        return centre_crop(sample, patch_size)
    coords = create_zero_centered_coordinate_mesh(tuple(patch_size))
    coords = np.tensordot(matrix, coords, axes=([1], [0]))
    for axis, length in enumerate(sample.spatial_shape):
        coords[axis] += (length - 1) / 2.0
    data = np.stack([interpolate_img(c, coords, order=3, mode="constant", cval=0.0) for c in sample.data])
    seg = np.stack([interpolate_img(s.astype(np.float32), coords, order=0, mode="constant", cval=0.0)
                    for s in sample.seg])
    return Sample(data.astype(np.float32), seg.astype(sample.seg.dtype))


def centre_crop(sample: Sample, patch_size: Sequence[int]) -> Sample:
    """Crop the centre ``patch_size`` out of ``sample`` (which must be at least that large).

    Returns:
        The cropped sample (copies).
    """
    slices = [slice(None)]
    for length, target in zip(sample.spatial_shape, patch_size):
        start = (length - target) // 2
        slices.append(slice(start, start + target))
    index = tuple(slices)
    return Sample(np.ascontiguousarray(sample.data[index]), np.ascontiguousarray(sample.seg[index]))


class RandomAffineCrop(RandomTransform):
    """Random rotation (probability ``p_rotation``) and scaling (``p_scale``), then centre crop.

    The crop to the final patch always happens, so this transform is not wrapped in ``Maybe``;
    the two probabilities only decide whether rotation and scale are identity.

    Args:
        patch_size: final spatial patch size.
        max_angle: per-axis rotation range in radians (+-).
        scale_range: uniform range of the zoom factor (below 1 zooms in).
        p_rotation: probability of rotating.
        p_scale: probability of scaling.
        in_plane_axis: for anisotropic 3D data, the coarse axis: rotate around it only and
            leave it unscaled.
    """

    def __init__(self, patch_size: Sequence[int], max_angle: float, scale_range: tuple[float, float] = (0.7, 1.4),
                 p_rotation: float = 0.2, p_scale: float = 0.2, in_plane_axis: int | None = None) -> None:
        self.patch_size = tuple(int(p) for p in patch_size)
        self.max_angle = max_angle
        self.scale_range = scale_range
        self.p_rotation = p_rotation
        self.p_scale = p_scale
        self.in_plane_axis = in_plane_axis

    def sample(self, rng: np.random.Generator, sample: Sample) -> AffineParams | None:
        dim = len(self.patch_size)
        rotate = rng.uniform() < self.p_rotation
        scale = rng.uniform() < self.p_scale
        if not rotate and not scale:
            return None
        matrix = np.eye(dim)
        if rotate:
            matrix = self._random_rotation(rng, dim)
        if scale:
            factors = np.full(dim, rng.uniform(*self.scale_range))
            if self.in_plane_axis is not None:
                factors[self.in_plane_axis] = 1.0
            matrix = matrix @ np.diag(factors)
        return AffineParams(matrix)

    def _random_rotation(self, rng: np.random.Generator, dim: int) -> np.ndarray:
        if dim == 2:
            return rotation_matrix([rng.uniform(-self.max_angle, self.max_angle)])
        angles = rng.uniform(-self.max_angle, self.max_angle, size=3)
        if self.in_plane_axis is not None:
            angles = np.where(np.arange(3) == self.in_plane_axis, angles, 0.0)
        return rotation_matrix(list(angles))

    def apply(self, sample: Sample, params: AffineParams | None) -> Sample:
        return affine_crop(sample, None if params is None else params.matrix, self.patch_size)

    def __repr__(self) -> str:
        return (f"RandomAffineCrop(patch={self.patch_size}, max_angle={math.degrees(self.max_angle):.0f}deg, "
                f"scale={self.scale_range}, in_plane_axis={self.in_plane_axis})")


def rotation_range(dim: int, patch_size: Sequence[int], in_plane: bool) -> float:
    """Maximum rotation angle in radians (nnU-Net's choices).

    Args:
        dim: 2 or 3.
        patch_size: final patch size.
        in_plane: anisotropic 3D data rotated around its coarse axis only.

    Returns:
        The angle: 180 degrees in 2D (15 for elongated patches) and in-plane 3D, else 30.
    """
    if dim == 2:
        elongated = max(patch_size) / min(patch_size) > 1.5
        return math.radians(15 if elongated else 180)
    return math.radians(180 if in_plane else 30)


def initial_patch_size(patch_size: Sequence[int], max_angle: float,
                       in_plane_axis: int | None = None) -> tuple[int, ...]:
    """Patch size to sample so that rotating about any one axis by up to ``max_angle`` stays inside.

    Rotations about one axis at a time are considered (like nnU-Net); a rotation about all three
    at once may still pull a little zero padding into the corners.

    Args:
        patch_size: final patch size.
        max_angle: rotation range (+-) in radians.
        in_plane_axis: coarse axis that is neither rotated nor scaled.

    Returns:
        The enlarged size (also covering zoom-out to :data:`ENLARGE_FOR_SCALE`), never smaller
        than ``patch_size``.
    """
    dim = len(patch_size)
    half = np.asarray(patch_size, dtype=float) / 2.0
    corners = np.array(list(itertools.product(*[(-h, h) for h in half]))).T
    angles = sorted({-max_angle, max_angle, -min(max_angle, math.pi / 4), min(max_angle, math.pi / 4)})
    axes = [0] if dim == 2 else ([in_plane_axis] if in_plane_axis is not None else [0, 1, 2])
    extent = np.abs(corners).max(axis=1)
    for axis in axes:
        for angle in angles:
            per_axis = [angle] if dim == 2 else [angle if a == axis else 0.0 for a in range(3)]
            extent = np.maximum(extent, np.abs(rotation_matrix(per_axis) @ corners).max(axis=1))
    size = np.ceil(2 * extent / ENLARGE_FOR_SCALE).astype(int)
    if in_plane_axis is not None:
        size[in_plane_axis] = patch_size[in_plane_axis]
    return tuple(int(max(s, p)) for s, p in zip(size, patch_size))
