"""DICOM SEG: valid by dciodvfy, and read back voxel for voxel by highdicom and by dcmqi."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("highdicom", reason="highdicom not installed (pip install highdicom)")

import highdicom as hd  # noqa: E402
import pydicom  # noqa: E402

from autolung.errors import InvalidInputError  # noqa: E402
from autolung.io.dicom import series_files  # noqa: E402
from autolung.io.images import read_image  # noqa: E402
from autolung.reporting.dicom_seg import write_dicom_seg  # noqa: E402
from conftest import SHARED_DATA  # noqa: E402
from .dicom_tools import dciodvfy_errors, dcmqi_segments, write_ct_series  # noqa: E402
from .shapes import ellipsoid, oblique_direction  # noqa: E402

NAMES = {1: "lung", 2: "tumour"}


def _oblique_series(folder: Path) -> np.ndarray:
    volume = (np.arange(7 * 20 * 24).reshape(7, 20, 24) % 50 - 800).astype(np.int16)
    write_ct_series(folder, volume, (2.5, 0.7, 0.8), oblique_direction(), (-50.0, 20.0, 100.0), shuffle=True)
    return volume


def _two_class_mask(shape) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[1:5, 3:9, 4:12] = 1
    mask[ellipsoid(shape, (2.5, 0.7, 0.8), (3.4, 13.0, 15.0), (3.0, 3.5, 3.0))] = 2
    return mask


def _highdicom_mask(seg_path: Path, source_folder: Path) -> np.ndarray:
    """Our mask as highdicom reads it, frames in the series' slice order."""
    seg = hd.seg.segread(seg_path)
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in series_files(source_folder)]
    return seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True,
                                             skip_overlap_checks=True)


def _dcmqi_mask(seg_path: Path, source_folder: Path, out: Path, segment_values: dict[int, int]) -> np.ndarray:
    """dcmqi's files resampled (nearest) onto the source grid, labels restored."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series_files(source_folder))
    reference = reader.Execute()
    mask = np.zeros(sitk.GetArrayFromImage(reference).shape, np.uint8)
    for path in dcmqi_segments(seg_path, out):
        segment = int(path.name.split(".")[0])
        resampled = sitk.Resample(sitk.ReadImage(str(path)), reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        mask[sitk.GetArrayFromImage(resampled) > 0] = segment_values[segment]
    return mask


@pytest.mark.parametrize("seg_type", ["binary", "fractional"])
def test_oblique_shuffled_series_round_trip(tmp_path, seg_type):
    _oblique_series(tmp_path / "ct")
    _, geometry = read_image(tmp_path / "ct")
    assert geometry.direction == pytest.approx(oblique_direction(), abs=1e-5)
    mask = _two_class_mask(geometry.shape)
    written = write_dicom_seg(tmp_path / "ct", mask, tmp_path / "seg.dcm", NAMES, seg_type=seg_type)
    assert dciodvfy_errors(tmp_path / "seg.dcm") == []
    assert np.array_equal(_highdicom_mask(tmp_path / "seg.dcm", tmp_path / "ct"), mask)
    by_segment = {number: value for value, number in written.segment_numbers.items()}
    assert np.array_equal(_dcmqi_mask(tmp_path / "seg.dcm", tmp_path / "ct", tmp_path / "dcmqi", by_segment), mask)
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    source = pydicom.dcmread(series_files(tmp_path / "ct")[0])
    assert seg.SegmentationType == seg_type.upper()
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.PatientID == "P123"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.SOPInstanceUID not in {source.SOPInstanceUID, source.SeriesInstanceUID}
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID
    assert pydicom.uid.UID(seg.SOPInstanceUID).is_valid and pydicom.uid.UID(seg.SeriesInstanceUID).is_valid
    codes = {d.SegmentLabel: d.SegmentedPropertyTypeCodeSequence[0].CodeValue for d in seg.SegmentSequence}
    assert codes == {"lung": "39607008", "tumour": "108369006"}


def test_real_series_round_trip_and_deidentify(tmp_path):
    folder = SHARED_DATA / "dicom" / "LUNG1-002_ct_24slices"
    if not folder.is_dir():
        pytest.skip(f"real DICOM series not available at {folder}")
    image, geometry = read_image(folder)
    mask = np.zeros(geometry.shape, np.uint8)
    mask[(image[0] < -400) & (image[0] > -1000)] = 1
    mask[ellipsoid(geometry.shape, geometry.spacing, (12, 300, 180), (12.0, 20.0, 15.0))] = 2
    write_dicom_seg(folder, mask, tmp_path / "seg.dcm", NAMES, anonymize=True)
    assert dciodvfy_errors(tmp_path / "seg.dcm") == []
    assert np.array_equal(_highdicom_mask(tmp_path / "seg.dcm", folder), mask)
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    source = pydicom.dcmread(series_files(folder)[0], stop_before_pixels=True)
    assert str(seg.PatientName) == "ANONYMOUS" and seg.PatientIdentityRemoved == "YES"
    assert seg.StudyInstanceUID == source.StudyInstanceUID


def test_refuses_non_dicom_input_and_wrong_grid(tmp_path):
    sitk.WriteImage(sitk.Image(8, 8, 4, sitk.sitkInt16), str(tmp_path / "scan.nii.gz"))
    with pytest.raises(InvalidInputError, match="not a DICOM series"):
        write_dicom_seg(tmp_path, np.zeros((4, 8, 8), np.uint8), tmp_path / "out" / "seg.dcm", NAMES)
    _oblique_series(tmp_path / "ct")
    with pytest.raises(InvalidInputError, match="does not match the DICOM series"):
        write_dicom_seg(tmp_path / "ct", np.zeros((7, 20, 23), np.uint8), tmp_path / "out" / "seg.dcm", NAMES)
    assert not (tmp_path / "out" / "seg.dcm").exists()


def test_empty_mask_gives_empty_named_segments(tmp_path):
    _oblique_series(tmp_path / "ct")
    write_dicom_seg(tmp_path / "ct", np.zeros((7, 20, 24), np.uint8), tmp_path / "seg.dcm", NAMES)
    assert dciodvfy_errors(tmp_path / "seg.dcm") == []
    assert not _highdicom_mask(tmp_path / "seg.dcm", tmp_path / "ct").any()
