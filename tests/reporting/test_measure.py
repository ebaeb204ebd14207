"""Lesion measurements against generated shapes with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from autolung.errors import InvalidInputError
from autolung.reporting.measure import MeasurementOptions, measure_case
from .shapes import ellipsoid, geometry, oblique_direction


def _sitk_point(geom, zyx):
    """Independent index -> patient transform: SimpleITK's own."""
    image = sitk.Image([int(n) for n in reversed(geom.shape)], sitk.sitkUInt8)
    image.SetSpacing([float(s) for s in reversed(geom.spacing)])
    image.SetOrigin(geom.origin)
    image.SetDirection(geom.direction)
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in reversed(zyx)]))


def test_sphere_at_anisotropic_spacing():
    shape, spacing = (20, 50, 50), (2.5, 0.7, 0.7)
    labels = ellipsoid(shape, spacing, (10, 25, 25), (10.0, 10.0, 10.0)).astype(np.uint8)
    case = measure_case("sphere", labels, geometry(shape, spacing), None)
    assert len(case.lesions) == 1
    lesion = case.lesions[0]
    assert lesion.volume_mm3 == pytest.approx(4 / 3 * math.pi * 1000, rel=0.04)
    assert lesion.volume_ml == pytest.approx(lesion.volume_mm3 / 1000)
    assert lesion.long_axis_mm == pytest.approx(20.0, abs=1.0)
    assert lesion.short_axis_mm == pytest.approx(20.0, abs=1.0)
    # Slices 2.5 mm apart: the voxelised sphere reaches up to half a slice beyond the true sphere.
    assert lesion.max_diameter_3d_mm == pytest.approx(20.0, abs=2.5)
    assert lesion.recist_slice == 10
    assert lesion.centroid_zyx == pytest.approx([10, 25, 25], abs=1e-6)


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), oblique_direction()])
def test_rotated_ellipsoid_on_oblique_grid(direction):
    shape, spacing = (24, 64, 72), (2.0, 0.8, 0.6)
    centre = (11.3, 31.6, 35.2)
    labels = ellipsoid(shape, spacing, centre, (15.0, 8.0, 6.0), in_plane_degrees=30.0).astype(np.uint8) * 2
    geom = geometry(shape, spacing, direction)
    image = np.where(labels > 0, 40.0, -800.0) + np.arange(labels.size).reshape(shape) % 7
    lesion = measure_case("ellipsoid", labels, geom, image).lesions[0]
    assert lesion.label == 2
    assert lesion.volume_mm3 == pytest.approx(4 / 3 * math.pi * 15 * 8 * 6, rel=0.03)
    assert lesion.long_axis_mm == pytest.approx(30.0, abs=1.0)
    assert lesion.short_axis_mm == pytest.approx(16.0, abs=1.0)
    assert lesion.max_diameter_3d_mm == pytest.approx(30.0, abs=1.0)
    # Long axis along the 30-degree direction of the slice plane.
    (_, y0, x0), (_, y1, x1) = lesion.long_axis_endpoints_zyx
    angle = math.degrees(math.atan2((y1 - y0) * spacing[1], (x1 - x0) * spacing[2])) % 180
    assert angle == pytest.approx(30.0, abs=4.0)
    # Centroid: the discrete shape's centre of mass, placed in patient space like SimpleITK does.
    assert lesion.centroid_zyx == pytest.approx(list(centre), abs=0.1)
    assert lesion.centroid_patient_mm == pytest.approx(list(_sitk_point(geom, lesion.centroid_zyx)), abs=1e-6)
    inside = image[labels > 0]
    assert lesion.hu["mean"] == pytest.approx(float(inside.mean()))
    assert lesion.hu["p50"] == pytest.approx(float(np.median(inside)))
    assert lesion.hu["max"] == pytest.approx(float(inside.max()))


def test_touching_lesions_follow_connectivity():
    labels = np.zeros((6, 10, 10), dtype=np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    labels[3:5, 3:5, 3:5] = 1  # shares one corner with the first cube
    labels[1:3, 1:3, 3:6] = 2  # touches the first cube face to face, but is another class
    geom = geometry(labels.shape, (1.0, 1.0, 1.0))
    corners = measure_case("c", labels, geom, None, MeasurementOptions(connectivity=3))
    faces = measure_case("c", labels, geom, None, MeasurementOptions(connectivity=1))
    assert sorted((l.label, l.voxels) for l in corners.lesions) == [(1, 16), (2, 12)]
    assert sorted((l.label, l.voxels) for l in faces.lesions) == [(1, 8), (1, 8), (2, 12)]
    assert [l.lesion for l in faces.lesions] == [1, 2, 3]


def test_lesion_on_the_volume_border_is_measured_to_the_edge():
    shape, spacing = (12, 40, 40), (1.0, 1.0, 1.0)
    labels = ellipsoid(shape, spacing, (6, 20, 0), (8.0, 8.0, 4.0)).astype(np.uint8)  # cut in half at x = 0
    lesion = measure_case("border", labels, geometry(shape, spacing), None).lesions[0]
    assert lesion.bbox_min_zyx[2] == 0
    assert lesion.long_axis_mm == pytest.approx(16.0, abs=1.0)
    assert lesion.short_axis_mm == pytest.approx(8.5, abs=1.0)  # the half-disc, up to the array's edge
    assert lesion.volume_mm3 == pytest.approx(4 / 3 * math.pi * 8 * 8 * 4 / 2 + 0.5 * math.pi * 8 * 4, rel=0.06)


def test_empty_mask_has_no_lesions():
    case = measure_case("empty", np.zeros((4, 8, 8), np.uint8), geometry((4, 8, 8), (1.0, 1.0, 1.0)), None)
    assert case.lesions == [] and case.total_volume_ml == 0.0 and case.largest is None


def test_single_voxel_and_minimum_volume():
    labels = np.zeros((5, 9, 9), dtype=np.uint8)
    labels[2, 4, 4] = 1
    labels[0:2, 0:3, 0:3] = 1
    geom = geometry(labels.shape, (2.0, 0.5, 0.8))
    case = measure_case("speck", labels, geom, None)
    speck = [l for l in case.lesions if l.voxels == 1][0]
    assert speck.long_axis_mm == pytest.approx(0.8) and speck.max_diameter_3d_mm == pytest.approx(2.0)
    kept = measure_case("speck", labels, geom, None, MeasurementOptions(min_volume_mm3=1.0))
    assert [l.voxels for l in kept.lesions] == [18] and kept.dropped_components == 1


def test_side_from_orientation_and_from_lung_label():
    shape, spacing = (4, 60, 240), (5.0, 1.0, 1.0)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[1:3, 28:32, 200:204] = 2  # high x index
    identity = geometry(shape, spacing, origin=(-120.0, 0.0, 0.0))
    flipped = geometry(shape, spacing, direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1), origin=(120.0, 0.0, 0.0))
    # LPS: +x is the patient's left; the flipped grid puts the same voxels on the right.
    assert measure_case("a", labels, identity, None).lesions[0].side == "left"
    assert measure_case("a", labels, flipped, None).lesions[0].side == "right"
    labels[:, 10:50, 20:110] = np.where(labels[:, 10:50, 20:110] == 0, 1, labels[:, 10:50, 20:110])
    labels[:, 10:50, 130:230] = np.where(labels[:, 10:50, 130:230] == 0, 1, labels[:, 10:50, 130:230])
    with_lungs = measure_case("a", labels, flipped, None, MeasurementOptions(lung_labels=(1,)))
    assert [(l.label, l.side, l.side_source) for l in with_lungs.lesions] == [(2, "right", "lung_label")]
    narrow = geometry((4, 40, 40), spacing)
    crop = np.zeros((4, 40, 40), np.uint8)
    crop[1, 5, 5] = 1
    assert measure_case("a", crop, narrow, None).lesions[0].side == "unknown"


def test_refuses_2d_and_sheared_grids():
    labels = np.ones((1, 4, 4), dtype=np.uint8)
    flat = geometry((1, 4, 4), (999.0, 1.0, 1.0))
    with pytest.raises(InvalidInputError, match="3D"):
        measure_case("a", labels, type(flat)(**{**flat.__dict__, "file_dims": 2, "direction": (1, 0, 0, 1)}), None)
    sheared = geometry((1, 4, 4), (1.0, 1.0, 1.0), direction=(1, 0.3, 0, 0, 1, 0, 0, 0, 1))
    with pytest.raises(InvalidInputError, match="orthonormal"):
        measure_case("a", labels, sheared, None)
