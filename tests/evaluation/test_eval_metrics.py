"""Metrics on analytic shapes, against independent implementations, and empty-mask conventions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial import cKDTree

from autolung.evaluation.metrics import binary_metrics, evaluate_case, overlap_metrics
from autolung.evaluation.surface import hausdorff_max, surface_distances

ANISO = (2.5, 0.8, 0.6)


def cube(shape, start, size) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


def sphere(shape, centre, radius_mm, spacing) -> np.ndarray:
    grids = np.meshgrid(*[(np.arange(n) - c) * s for n, c, s in zip(shape, centre, spacing)], indexing="ij")
    return sum(g ** 2 for g in grids) <= radius_mm ** 2


def test_cube_overlap_is_analytic():
    ref = cube((20, 20, 20), (2, 2, 2), 10)            # 1000 voxels
    pred = cube((20, 20, 20), (2, 2, 7), 10)           # shifted by 5 along x: overlap 500
    result = binary_metrics(ref, pred, ANISO)
    assert result["tp"] == 500 and result["fp"] == 500 and result["fn"] == 500
    assert result["dice"] == pytest.approx(0.5)
    assert result["iou"] == pytest.approx(1 / 3)
    assert result["precision"] == pytest.approx(0.5) and result["recall"] == pytest.approx(0.5)
    voxel_ml = 2.5 * 0.8 * 0.6 / 1000
    assert result["volume_ref_ml"] == pytest.approx(1000 * voxel_ml)
    assert result["volume_diff_ml"] == pytest.approx(0.0)


def test_nested_cubes_precision_recall():
    ref = cube((12, 12, 12), (2, 2, 2), 8)             # 512
    pred = cube((12, 12, 12), (4, 4, 4), 4)            # 64, inside ref
    result = overlap_metrics(ref, pred)
    assert result["precision"] == 1.0
    assert result["recall"] == pytest.approx(64 / 512)
    assert result["dice"] == pytest.approx(2 * 64 / (512 + 64))


def _brute_force_surface_distances(a: np.ndarray, b: np.ndarray, spacing):
    """Independent: surface = voxel with a face neighbour outside (padded), distances by KD-tree."""
    def surface_points(mask):
        padded = np.pad(mask, 1)
        inner = padded[1:-1, 1:-1, 1:-1]
        touching = np.zeros_like(inner)
        for axis in range(3):
            for shift in (1, -1):
                touching |= ~np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
        return np.argwhere(inner & touching) * np.asarray(spacing)
    pa, pb = surface_points(a), surface_points(b)
    return cKDTree(pb).query(pa)[0], cKDTree(pa).query(pb)[0]


def test_hd95_and_nsd_match_brute_force_on_offset_spheres():
    shape = (16, 40, 48)
    ref = sphere(shape, (8, 20, 22), 9.0, ANISO)
    pred = sphere(shape, (7, 21, 26), 8.0, ANISO)
    d_ab, d_ba = _brute_force_surface_distances(ref, pred, ANISO)
    expected_hd95 = max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))
    expected_nsd = (np.sum(d_ab <= 2.0 + 1e-6) + np.sum(d_ba <= 2.0 + 1e-6)) / (d_ab.size + d_ba.size)
    result = binary_metrics(ref, pred, ANISO, tolerance_mm=2.0)
    assert result["hd95"] == pytest.approx(expected_hd95, rel=1e-6)
    assert result["nsd"] == pytest.approx(expected_nsd, rel=1e-6)


def test_max_hausdorff_matches_simpleitk_with_anisotropic_spacing():
    shape = (16, 40, 48)
    ref = sphere(shape, (8, 20, 22), 9.0, ANISO)
    pred = sphere(shape, (6, 22, 28), 7.0, ANISO)
    filt = sitk.HausdorffDistanceImageFilter()
    images = []
    for mask in (ref, pred):
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.SetSpacing(tuple(reversed(ANISO)))
        images.append(image)
    filt.Execute(*images)
    assert hausdorff_max(surface_distances(ref, pred, ANISO)) == pytest.approx(filt.GetHausdorffDistance(), rel=1e-6)


def test_shift_within_tolerance_gives_full_nsd():
    ref = cube((10, 20, 20), (2, 5, 5), 6)
    pred = np.roll(ref, 1, axis=2)  # one voxel = 0.6 mm along x
    assert binary_metrics(ref, pred, ANISO, tolerance_mm=0.6)["nsd"] == pytest.approx(1.0)
    assert binary_metrics(ref, pred, ANISO, tolerance_mm=0.5)["nsd"] < 1.0
    assert binary_metrics(ref, ref, ANISO)["hd95"] == 0.0


def test_empty_mask_conventions():
    empty = np.zeros((5, 5, 5), dtype=bool)
    full = cube((5, 5, 5), (1, 1, 1), 2)
    both = binary_metrics(empty, empty, ANISO)
    # nnU-Net's convention: undefined (NaN), left out of means and counted, so means compare
    assert all(np.isnan(both[name]) for name in ("dice", "iou", "precision", "recall", "hd95", "nsd"))
    missed = binary_metrics(full, empty, ANISO)
    assert missed["dice"] == 0.0 and missed["recall"] == 0.0 and math.isnan(missed["precision"])
    assert math.isnan(missed["hd95"]) and missed["nsd"] == 0.0
    false_alarm = binary_metrics(empty, full, ANISO)
    assert false_alarm["dice"] == 0.0 and false_alarm["precision"] == 0.0 and math.isnan(false_alarm["recall"])


def test_evaluate_case_labels_and_regions():
    ref = np.zeros((6, 6, 6), dtype=np.uint8)
    ref[1:3] = 1
    ref[3:5] = 2
    pred = ref.copy()
    pred[3:5] = 1
    result = evaluate_case(ref, pred, (1, 1, 1), [1, 2, (1, 2)])
    assert result["1"]["dice"] == pytest.approx(2 * 72 / (72 + 144))
    assert result["2"]["dice"] == 0.0
    assert result["1+2"]["dice"] == 1.0


def test_cli_label_parsing_accepts_regions():
    from autolung_cli.commands.evaluate import _parse_labels

    assert _parse_labels(["1", "1,2"]) == [1, (1, 2)]
    assert _parse_labels(None) is None
