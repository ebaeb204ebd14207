"""RTSTRUCT: valid by dciodvfy; its contours filled by voxel centre give the mask back."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pydicom", reason="pydicom not installed (pip install pydicom)")

import pydicom  # noqa: E402
from skimage.draw import polygon2mask  # noqa: E402

from autolung.io.dicom import series_files  # noqa: E402
from autolung.io.images import read_image  # noqa: E402
from autolung.reporting.rtstruct import write_rtstruct  # noqa: E402
from conftest import SHARED_DATA  # noqa: E402
from .dicom_tools import dciodvfy_errors, write_ct_series  # noqa: E402
from .shapes import ellipsoid, oblique_direction  # noqa: E402


def _fill(rtstruct, roi_number: int, geometry, uids: list[str]) -> np.ndarray:
    """Rasterise one ROI's contours by voxel centre (even-odd for holes), independently of our code."""
    matrix = np.asarray(geometry.direction).reshape(3, 3)
    spacing_xyz = np.asarray(geometry.spacing)[::-1]
    mask = np.zeros(geometry.shape, bool)
    roi = next(r for r in rtstruct.ROIContourSequence if r.ReferencedROINumber == roi_number)
    for contour in getattr(roi, "ContourSequence", []):
        points = np.asarray(contour.ContourData, float).reshape(-1, 3)
        index_xyz = ((points - np.asarray(geometry.origin)) @ matrix) / spacing_xyz
        z = int(round(float(index_xyz[:, 2].mean())))
        assert np.allclose(index_xyz[:, 2], z, atol=1e-3)  # planar, on its slice
        assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID == uids[z]
        mask[z] ^= polygon2mask(geometry.shape[1:], index_xyz[:, [1, 0]])
    return mask


def _check(folder, mask, names, tmp_path):
    _, geometry = read_image(folder)
    write_rtstruct(folder, mask, tmp_path / "rt.dcm", names)
    assert dciodvfy_errors(tmp_path / "rt.dcm") == []
    rt = pydicom.dcmread(tmp_path / "rt.dcm")
    source = [pydicom.dcmread(f, stop_before_pixels=True) for f in series_files(folder)]
    assert rt.FrameOfReferenceUID == source[0].FrameOfReferenceUID and rt.PatientID == source[0].PatientID
    assert rt.SOPInstanceUID != source[0].SOPInstanceUID
    uids = [s.SOPInstanceUID for s in source]
    for roi in rt.StructureSetROISequence:
        value = next(v for v, n in names.items() if n == roi.ROIName)
        filled = _fill(rt, roi.ROINumber, geometry, uids)
        expected = mask == value
        assert expected.any() and np.array_equal(filled, expected)
    return rt


def test_oblique_shuffled_series_with_a_hole(tmp_path):
    volume = np.full((6, 30, 32), -800, np.int16)
    write_ct_series(tmp_path / "ct", volume, (2.5, 0.7, 0.8), oblique_direction(), (-50.0, 20.0, 100.0))
    shape = (6, 30, 32)
    mask = np.zeros(shape, np.uint8)
    mask[ellipsoid(shape, (2.5, 0.7, 0.8), (2.5, 15, 16), (6.0, 8.0, 9.0))] = 1
    mask[:, 13:17, 14:18] = 0  # a hole through the lung-like blob
    mask[1:4, 2:6, 2:8] = 2
    rt = _check(tmp_path / "ct", mask, {1: "lung", 2: "tumour"}, tmp_path)
    types = {o.ReferencedROINumber: o.RTROIInterpretedType for o in rt.RTROIObservationsSequence}
    assert types == {1: "ORGAN", 2: "GTV"}


def test_real_series(tmp_path):
    folder = SHARED_DATA / "dicom" / "LUNG1-002_ct_24slices"
    if not folder.is_dir():
        pytest.skip(f"real DICOM series not available at {folder}")
    image, geometry = read_image(folder)
    mask = np.zeros(geometry.shape, np.uint8)
    mask[ellipsoid(geometry.shape, geometry.spacing, (12, 300, 180), (12.0, 20.0, 15.0))] = 2
    _check(folder, mask, {2: "tumour"}, tmp_path)
