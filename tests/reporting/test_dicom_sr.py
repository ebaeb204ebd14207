"""``report --sr``: a TID 1500 SR per case, valid by dciodvfy, read back by highdicom."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("highdicom", reason="highdicom not installed (pip install highdicom)")

import highdicom as hd  # noqa: E402

from autolung.io.images import read_image  # noqa: E402
from conftest import run_cli_group  # noqa: E402
from .dicom_tools import dciodvfy_errors, write_ct_series  # noqa: E402
from .shapes import ellipsoid, oblique_direction  # noqa: E402


@pytest.fixture
def dicom_case(tmp_path):
    volume = (np.arange(8 * 24 * 24).reshape(8, 24, 24) % 40 - 820).astype(np.int16)
    write_ct_series(tmp_path / "ct" / "scan", volume, (2.5, 0.7, 0.8), oblique_direction(), (-50.0, 20.0, 100.0))
    _, geometry = read_image(tmp_path / "ct" / "scan")
    mask = np.zeros(geometry.shape, np.uint8)
    mask[ellipsoid(geometry.shape, geometry.spacing, (4, 7, 8), (5.0, 4.0, 3.5))] = 2
    mask[2:5, 15:20, 14:21] = 2
    written = sitk.GetImageFromArray(mask)
    written.SetSpacing(tuple(reversed(geometry.spacing)))
    written.SetOrigin(geometry.origin)
    written.SetDirection(geometry.direction)
    (tmp_path / "masks").mkdir()
    sitk.WriteImage(written, str(tmp_path / "masks" / "scan.nii.gz"))
    return tmp_path


def test_report_sr_measurements_reference_the_seg(dicom_case, monkeypatch):
    out = dicom_case / "report"
    code = run_cli_group("report", ["report", "-i", str(dicom_case / "ct"), "-m", str(dicom_case / "masks"), "-o",
                                    str(out), "--sr", "--label-name", "2=tumour", "--no-pictures"], monkeypatch)
    assert code == 0
    payload = json.loads((out / "report.json").read_text())
    case = payload["cases"][0]
    assert case["dicom"]["sr"] == "dicom/scan_sr.dcm"
    for name in ("scan_seg.dcm", "scan_sr.dcm"):
        assert dciodvfy_errors(out / "dicom" / name) == []
    sr = hd.sr.srread(out / "dicom" / "scan_sr.dcm")
    seg = hd.seg.segread(out / "dicom" / "scan_seg.dcm")
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert [str(g.tracking_identifier) for g in groups] == ["lesion 1", "lesion 2"]
    for group, lesion in zip(groups, case["lesions"]):
        values = {m.name.meaning: m.value for m in group.get_measurements()}
        assert values["Volume"] == pytest.approx(lesion["volume_mm3"], rel=1e-6)
        assert values["Long axis"] == pytest.approx(lesion["long_axis_mm"], rel=1e-6)
        assert values["Short axis"] == pytest.approx(lesion["short_axis_mm"], rel=1e-6)
        assert values["Diameter"] == pytest.approx(lesion["max_diameter_3d_mm"], rel=1e-6)
        reference = group.referenced_segment
        assert reference.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert list(reference.referenced_segment_numbers) == [1]
        lesion_slices = range(lesion["bbox_min_zyx"][0], lesion["bbox_max_zyx"][0] + 1)
        assert len(reference.source_images_for_segmentation) == len(lesion_slices)
        assert group.finding_type.value == "108369006"
    evidence = {item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                for series in sr.CurrentRequestedProcedureEvidenceSequence
                for item in series.ReferencedSeriesSequence}
    assert seg.SOPInstanceUID in evidence
    assert sr.StudyInstanceUID == seg.StudyInstanceUID and sr.PatientID == "P123"


def test_report_sr_refuses_non_dicom_images(tmp_path, monkeypatch, capsys):
    image = sitk.Image(8, 8, 4, sitk.sitkInt16)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    sitk.WriteImage(image, str(tmp_path / "images" / "a.nii.gz"))
    sitk.WriteImage(sitk.Image(8, 8, 4, sitk.sitkUInt8), str(tmp_path / "masks" / "a.nii.gz"))
    code = run_cli_group("report", ["report", "-i", str(tmp_path / "images"), "-m", str(tmp_path / "masks"), "-o",
                                    str(tmp_path / "out"), "--sr"], monkeypatch)
    assert code == 1 and "not a DICOM series" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.shared_data
def test_real_series_with_its_reference_tumour(tmp_path, monkeypatch):
    """The real 24-slice LUNG1-002 series with the NSCLC reference labels resampled onto it (same voxels)."""
    from autolung.io.dicom import series_files
    from conftest import SHARED_DATA, shared_dataset

    folder = SHARED_DATA / "dicom" / "LUNG1-002_ct_24slices"
    if not folder.is_dir():
        pytest.skip(f"real DICOM series not available at {folder}")
    labels = shared_dataset("NSCLC_LungCT") / "labelsTr" / "lung1_002.nii.gz"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series_files(folder))
    mask = sitk.Resample(sitk.ReadImage(str(labels)), reader.Execute(), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    (tmp_path / "masks").mkdir()
    sitk.WriteImage(mask, str(tmp_path / "masks" / "ct.nii.gz"))
    out = tmp_path / "report"
    code = run_cli_group("report", ["report", "-i", str(folder), "-m", str(tmp_path / "masks"), "-o", str(out), "--sr",
                                    "--label-name", "1=lung", "--label-name", "2=tumour", "--anonymize"], monkeypatch)
    assert code == 0
    lesion = json.loads((out / "report.json").read_text())["cases"][0]["lesions"][0]
    tumour_voxels = int(np.count_nonzero(sitk.GetArrayFromImage(mask) == 2))
    assert lesion["label_name"] == "tumour" and lesion["voxels"] == tumour_voxels
    assert lesion["volume_mm3"] == pytest.approx(tumour_voxels * 0.977 * 0.977 * 3.0, rel=1e-6)
    assert lesion["side"] == "right"  # patient x < 0 (LPS), drawn on the image's left
    for name in ("LUNG1-002_ct_24slices_seg.dcm", "LUNG1-002_ct_24slices_sr.dcm"):
        assert dciodvfy_errors(out / "dicom" / name) == []
    sr = hd.sr.srread(out / "dicom" / "LUNG1-002_ct_24slices_sr.dcm")
    assert str(sr.PatientName) == "ANONYMOUS"
    values = {m.name.meaning: m.value for m in sr.content.get_volumetric_roi_measurement_groups()[0].get_measurements()}
    assert values["Long axis"] == pytest.approx(lesion["long_axis_mm"])
