"""Connected lesions per class and their measurements, in physical space.

Rules (also in docs/reports.md):

* A lesion is a connected component of one label. ``connectivity`` 3 (the default) joins voxels
  that share a face, an edge or a corner (26 neighbours), as the lesion-wise evaluation does;
  1 joins faces only (6 neighbours). Components smaller than ``min_volume_mm3`` (default 0:
  every component is reported) are dropped and counted in the case's ``dropped_components``.
* Outlines are the faces between lesion and non-lesion voxels: a diameter is the largest
  distance between two face centres (like a mesh-based measurement), so one voxel measures one
  voxel spacing and a ball of radius r measures about 2r.
* RECIST 1.1: the long axis is the largest in-plane diameter over the lesion's slices (the
  image's own slice plane, the axial plane for CT); the short axis is the longest extent
  perpendicular to it on the same slice.
* Volume is the voxel count times the voxel volume.
* Side: the lung (of the lung label's two largest components) the lesion touches; else the
  lesion's patient left-right coordinate against the middle of the lung label; without a lung
  label, against the middle of the field of view (``unknown`` when the field of view is under
  :data:`MIN_SIDE_FIELD_MM` wide, e.g. a crop around the lesion).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import cdist

from autolung.errors import InvalidInputError
from autolung.io.geometry import ImageGeometry
from autolung.reporting.geometry import direction_matrix, index_to_patient, slice_normal

logger = logging.getLogger(__name__)

DEFAULT_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
# A field of view narrower than this (mm, left-right) is a crop: its middle is not the midline.
MIN_SIDE_FIELD_MM = 150.0
# Slices tilted further than this from the patient's axial plane are not "axial" for RECIST.
MAX_AXIAL_TILT_DEGREES = 45.0


@dataclass(frozen=True)
class MeasurementOptions:
    """How lesions are found and measured.

    Attributes:
        connectivity: 1 (faces, 6 neighbours), 2 (faces and edges, 18) or 3 (also corners, 26).
        min_volume_mm3: smaller components are not reported.
        labels: label values to measure; None measures every label present except ``lung_labels``.
        lung_labels: labels that mark lung (used to tell the side, not measured as lesions).
        percentiles: HU percentiles reported per lesion.
        label_names: names of labels, for the report.
    """

    connectivity: int = 3
    min_volume_mm3: float = 0.0
    labels: tuple[int, ...] | None = None
    lung_labels: tuple[int, ...] = ()
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    label_names: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.connectivity not in (1, 2, 3):
            raise InvalidInputError(f"connectivity must be 1, 2 or 3, got {self.connectivity}")
        if not math.isfinite(self.min_volume_mm3) or self.min_volume_mm3 < 0:
            raise InvalidInputError(f"min_volume_mm3 must be a finite number >= 0, got {self.min_volume_mm3}")
        if any(not 0 <= p <= 100 for p in self.percentiles):
            raise InvalidInputError(f"percentiles must lie in [0, 100], got {self.percentiles}")


@dataclass
class Lesion:
    """One measured lesion. Lengths in mm, volume in mm³ and mL, indices in array order (z, y, x).

    ``recist_*_endpoints_zyx`` are fractional array indices of the axis ends on ``recist_slice``.
    """

    lesion: int
    label: int
    label_name: str
    voxels: int
    volume_mm3: float
    volume_ml: float
    long_axis_mm: float
    short_axis_mm: float
    recist_slice: int
    long_axis_endpoints_zyx: list[list[float]]
    short_axis_endpoints_zyx: list[list[float]]
    max_diameter_3d_mm: float
    centroid_zyx: list[float]
    centroid_patient_mm: list[float]
    bbox_min_zyx: list[int]
    bbox_max_zyx: list[int]
    hu: dict[str, float]
    side: str
    side_source: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CaseMeasurements:
    """All lesions of one case, largest first within each label.

    ``masks`` maps a lesion number to its bounding box and the lesion's voxels inside it (for
    pictures and DICOM objects; not part of the JSON record).
    """

    case: str
    lesions: list[Lesion]
    dropped_components: int = 0
    masks: dict[int, tuple[tuple[slice, ...], np.ndarray]] = field(default_factory=dict, repr=False)

    def lesion_mask(self, lesion: int, shape: tuple[int, ...]) -> np.ndarray:
        """The full-grid boolean mask of one lesion."""
        box, local = self.masks[lesion]
        mask = np.zeros(shape, dtype=bool)
        mask[box] = local
        return mask

    @property
    def total_volume_ml(self) -> float:
        return float(sum(lesion.volume_ml for lesion in self.lesions))

    @property
    def largest(self) -> Lesion | None:
        return max(self.lesions, key=lambda lesion: lesion.volume_mm3, default=None)


def boundary_points(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Centres of the faces between ``mask`` voxels and the rest, in scaled index space (mm).

    Args:
        mask: boolean array of any dimension.
        spacing: voxel size per array axis.

    Returns:
        ``(N, ndim)`` points (index times spacing); outside the array counts as background.
    """
    padded = np.pad(mask.astype(bool), 1)
    inner = tuple(slice(1, -1) for _ in range(mask.ndim))
    points = []
    for axis in range(mask.ndim):
        for step in (-1, 1):
            neighbour = np.roll(padded, -step, axis=axis)  # neighbour[i] = padded[i + step]
            faces = np.argwhere((padded & ~neighbour)[inner]).astype(float)
            faces[:, axis] += 0.5 * step
            points.append(faces)
    return np.concatenate(points) * np.asarray(spacing, dtype=float)


def farthest_pair(points: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The two points furthest apart (through the convex hull when there are many).

    Args:
        points: ``(N, D)`` points, N >= 1.

    Returns:
        Their distance and the two points.
    """
    candidates = points
    if len(points) > 3 * points.shape[1]:
        try:
            candidates = points[ConvexHull(points).vertices]
        except QhullError:  # flat or collinear point sets: every point is a candidate
            candidates = points
    distances = cdist(candidates, candidates)
    first, second = np.unravel_index(int(np.argmax(distances)), distances.shape)
    return float(distances[first, second]), candidates[first], candidates[second]


def perpendicular_extent(points: np.ndarray, start: np.ndarray, end: np.ndarray,
                         bin_mm: float) -> tuple[float, np.ndarray, np.ndarray]:
    """The longest extent of 2D ``points`` perpendicular to the axis ``start``-``end``.

    Points are grouped into strips ``bin_mm`` wide across the axis; within a strip the extent is
    the spread across the axis. The chord is drawn through the strip's mean position.

    Returns:
        Length and the two end points.
    """
    axis = end - start
    length = float(np.linalg.norm(axis))
    if length == 0.0:
        return 0.0, start, start
    along = axis / length
    across = np.array([-along[1], along[0]])
    t = (points - start) @ along
    w = points @ across
    strips = np.floor(t / bin_mm).astype(np.int64)
    order = np.argsort(strips, kind="stable")
    strips, t, w = strips[order], t[order], w[order]
    starts = np.flatnonzero(np.r_[True, strips[1:] != strips[:-1]])
    spread = np.maximum.reduceat(w, starts) - np.minimum.reduceat(w, starts)
    best = int(np.argmax(spread))
    members = slice(starts[best], starts[best + 1] if best + 1 < len(starts) else len(t))
    position = float(np.mean(t[members]))
    base = start + position * along - float(start @ across) * across
    low, high = float(np.min(w[members])), float(np.max(w[members]))
    return float(spread[best]), base + low * across, base + high * across


def recist_axes(lesion_mask: np.ndarray, spacing: Sequence[float]) -> dict[str, Any]:
    """RECIST long and short axes of a lesion over its slices (axis 0 is the slice axis).

    Args:
        lesion_mask: boolean ``(Z, Y, X)`` array cropped to the lesion.
        spacing: voxel size (z, y, x) in mm.

    Returns:
        ``long``, ``short`` (mm), ``slice`` (index within ``lesion_mask``) and the axis end
        points as fractional (y, x) indices.
    """
    in_plane = np.asarray(spacing[1:], dtype=float)
    best: dict[str, Any] | None = None
    for index in np.flatnonzero(lesion_mask.any(axis=(1, 2))):
        points = boundary_points(lesion_mask[index], in_plane)
        long_mm, a, b = farthest_pair(points)
        if best is not None and long_mm <= best["long"]:
            continue
        short_mm, c, d = perpendicular_extent(points, a, b, bin_mm=float(in_plane.min()))
        best = {"long": long_mm, "short": short_mm, "slice": int(index),
                "long_ends": [a / in_plane, b / in_plane], "short_ends": [c / in_plane, d / in_plane]}
    assert best is not None, "recist_axes needs a non-empty mask"
    return best


def hu_statistics(values: np.ndarray, percentiles: Sequence[float]) -> dict[str, float]:
    """Mean, std, min, max and percentiles of the image values inside a lesion."""
    values = values.astype(np.float64)
    stats = {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
             "max": float(values.max())}
    for p, value in zip(percentiles, np.percentile(values, percentiles)):
        stats[f"p{p:g}"] = float(value)
    return stats


class SideFinder:
    """Left or right of a lesion: from the lung label's two lungs, else from the field of view."""

    def __init__(self, labels: np.ndarray, geometry: ImageGeometry, lung_labels: Sequence[int]) -> None:
        self._geometry = geometry
        self._lungs: list[tuple[np.ndarray, str]] = []
        self._midline = self._field_midline(geometry)
        self._midline_source = "orientation"
        if lung_labels:
            self._find_lungs(np.isin(labels, list(lung_labels)))

    @staticmethod
    def _field_midline(geometry: ImageGeometry) -> float | None:
        """Patient x of the middle of the field of view, or None when it is too narrow."""
        corners = np.array([[z, y, x] for z in (0, geometry.shape[0] - 1) for y in (0, geometry.shape[1] - 1)
                            for x in (0, geometry.shape[2] - 1)], dtype=float)
        lr = index_to_patient(geometry, corners)[:, 0]
        if float(lr.max() - lr.min()) < MIN_SIDE_FIELD_MM:
            return None
        return float((lr.max() + lr.min()) / 2)

    def _find_lungs(self, lung: np.ndarray) -> None:
        components, count = ndimage.label(lung)
        if count == 0:
            return
        sizes = np.bincount(components.ravel())[1:]
        largest = np.argsort(sizes)[::-1][:2] + 1
        centres = ndimage.center_of_mass(lung, components, list(largest))
        xs = [float(index_to_patient(self._geometry, np.asarray(c))[0]) for c in centres]
        if len(largest) == 2 and sizes[largest[1] - 1] >= 0.1 * sizes[largest[0] - 1]:
            left = int(np.argmax(xs))
            for rank, component in enumerate(largest):
                self._lungs.append((components == component, "left" if rank == left else "right"))
            self._midline = float(np.mean(xs))  # for lesions touching neither lung
        else:  # both lungs joined in one component: split at its centre of mass
            self._midline = xs[0]
        self._midline_source = "lung_label_midline"

    def side(self, mask: np.ndarray, box: tuple[slice, ...], centroid_patient: np.ndarray) -> tuple[str, str]:
        """``(side, source)`` of the lesion ``mask`` cropped at ``box``.

        Side is left, right or unknown. Source: ``lung_label`` (the lung the lesion touches,
        within 2 voxels), ``lung_label_midline`` (the patient left-right coordinate against the
        middle of the lung label: lungs joined in one component, or a lesion touching neither),
        or ``orientation`` (against the middle of the field of view; no lung label).
        """
        if self._lungs:
            region = tuple(slice(max(s.start - 2, 0), min(s.stop + 2, n)) for s, n in zip(box, self._geometry.shape))
            local = np.zeros(tuple(r.stop - r.start for r in region), dtype=bool)
            local[tuple(slice(s.start - r.start, s.stop - r.start) for s, r in zip(box, region))] = mask
            grown = ndimage.binary_dilation(local, iterations=2)
            touching = [(int(np.count_nonzero(grown & lung[region])), name) for lung, name in self._lungs]
            count, name = max(touching)
            if count:
                return name, "lung_label"
        if self._midline is None:
            return "unknown", "orientation"
        # LPS: +x points to the patient's left.
        return ("left" if centroid_patient[0] > self._midline else "right"), self._midline_source


def _check_axial(geometry: ImageGeometry) -> None:
    tilt = math.degrees(math.acos(min(1.0, abs(float(slice_normal(geometry)[2])))))
    if tilt > MAX_AXIAL_TILT_DEGREES:
        logger.warning("slices are %.0f degrees from the axial plane; RECIST axes are measured in the image's own "
                       "slice plane, which is not axial", tilt)


def measure_case(case: str, labels: np.ndarray, geometry: ImageGeometry, image: np.ndarray | None,
                 options: MeasurementOptions | None = None) -> CaseMeasurements:
    """Find and measure every lesion of every measured label.

    Args:
        case: case id, for the report.
        labels: ``(Z, Y, X)`` integer label map on the image grid.
        geometry: the grid's geometry (3D, orthonormal direction).
        image: ``(Z, Y, X)`` intensities (HU for CT) on the same grid, or None (no HU statistics).
        options: measurement options (defaults when None).

    Returns:
        The lesions, numbered 1.. per case, ordered by label then decreasing volume.

    Raises:
        InvalidInputError: 2D or sheared geometry, or arrays that do not match ``geometry``.
    """
    options = options or MeasurementOptions()
    direction_matrix(geometry)
    if tuple(labels.shape) != tuple(geometry.shape) or (image is not None and image.shape != labels.shape):
        raise InvalidInputError(f"label map {labels.shape} and image do not share the grid {tuple(geometry.shape)}")
    _check_axial(geometry)
    spacing = np.asarray(geometry.spacing, dtype=float)
    voxel_mm3 = float(np.prod(spacing))
    present = [int(v) for v in np.unique(labels) if v != 0]
    measured = [v for v in (options.labels if options.labels is not None else present)
                if v not in options.lung_labels]
    sides = SideFinder(labels, geometry, options.lung_labels)
    structure = ndimage.generate_binary_structure(3, options.connectivity)
    lesions: list[Lesion] = []
    masks: dict[int, tuple[tuple[slice, ...], np.ndarray]] = {}
    dropped = 0
    for value in measured:
        components, count = ndimage.label(labels == value, structure=structure)
        if count == 0:
            continue
        sizes = np.bincount(components.ravel())[1:]
        boxes = ndimage.find_objects(components)
        for component in np.argsort(-sizes, kind="stable") + 1:
            if sizes[component - 1] * voxel_mm3 < options.min_volume_mm3:
                dropped += 1
                continue
            box = boxes[component - 1]
            mask = components[box] == component
            values = image[box][mask] if image is not None else None
            lesions.append(_measure_lesion(len(lesions) + 1, value, options, mask, box, spacing, geometry, values,
                                           sides))
            masks[len(lesions)] = (box, mask)
    if dropped:
        logger.info("%s: %d component(s) under %g mm3 not reported", case, dropped, options.min_volume_mm3)
    return CaseMeasurements(case, lesions, dropped, masks)


def _measure_lesion(number: int, value: int, options: MeasurementOptions, mask: np.ndarray, box: tuple[slice, ...],
                    spacing: np.ndarray, geometry: ImageGeometry, values: np.ndarray | None,
                    sides: SideFinder) -> Lesion:
    offset = np.array([s.start for s in box], dtype=float)
    voxels = int(np.count_nonzero(mask))
    volume = voxels * float(np.prod(spacing))
    axes = recist_axes(mask, spacing)
    diameter, _, _ = farthest_pair(boundary_points(mask, spacing))
    centroid = np.argwhere(mask).mean(axis=0) + offset
    centroid_patient = index_to_patient(geometry, centroid)
    side, source = sides.side(mask, box, centroid_patient)
    slice_index = axes["slice"] + int(offset[0])

    def ends(points: list[np.ndarray]) -> list[list[float]]:
        return [[float(slice_index), float(p[0] + offset[1]), float(p[1] + offset[2])] for p in points]

    return Lesion(
        lesion=number, label=value, label_name=options.label_names.get(value, f"label {value}"), voxels=voxels,
        volume_mm3=volume, volume_ml=volume / 1000.0, long_axis_mm=axes["long"], short_axis_mm=axes["short"],
        recist_slice=slice_index, long_axis_endpoints_zyx=ends(axes["long_ends"]),
        short_axis_endpoints_zyx=ends(axes["short_ends"]), max_diameter_3d_mm=diameter,
        centroid_zyx=[float(c) for c in centroid], centroid_patient_mm=[float(c) for c in centroid_patient],
        bbox_min_zyx=[int(s.start) for s in box], bbox_max_zyx=[int(s.stop) - 1 for s in box],
        hu=hu_statistics(values, options.percentiles) if values is not None else {},
        side=side, side_source=source)
