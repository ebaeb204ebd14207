"""``autolung report`` through the real CLI: files, columns, values, bad input."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from autolung import api
from autolung.reporting.report import CSV_COLUMNS, REPORT_FORMAT, REPORT_VERSION
from conftest import run_cli_group
from .shapes import ellipsoid, oblique_direction


def _write(array: np.ndarray, path, spacing=(2.0, 0.8, 0.8), direction=None) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    image.SetOrigin((-100.0, -50.0, 20.0))
    if direction is not None:
        image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


@pytest.fixture
def case_folders(tmp_path):
    shape, spacing = (16, 48, 48), (2.0, 0.8, 0.8)
    labels = ellipsoid(shape, spacing, (8, 20, 20), (8.0, 5.0, 6.0)).astype(np.uint8) * 2
    labels[2:4, 40:44, 40:44] = 2
    image = np.where(labels > 0, 30, -850).astype(np.int16)
    _write(image, tmp_path / "images" / "case_a_0000.nii.gz", spacing, oblique_direction())
    _write(labels, tmp_path / "masks" / "case_a.nii.gz", spacing, oblique_direction())
    _write(image, tmp_path / "images" / "case_b_0000.nii.gz", spacing)
    _write(np.zeros_like(labels), tmp_path / "masks" / "case_b.nii.gz", spacing)
    return tmp_path


def test_report_cli_writes_every_file(case_folders, monkeypatch):
    out = case_folders / "report"
    code = run_cli_group("report", ["report", "-i", str(case_folders / "images"), "-m", str(case_folders / "masks"),
                                    "-o", str(out), "--label-name", "2=tumour"], monkeypatch)
    assert code == 0
    rows = list(csv.DictReader(open(out / "lesions.csv")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["case"], r["lesion"], r["label"], r["label_name"]) for r in rows] == [
        ("case_a", "1", "2", "tumour"), ("case_a", "2", "2", "tumour")]
    big = rows[0]
    assert float(big["volume_ml"]) == pytest.approx(4 / 3 * math.pi * 8 * 5 * 6 / 1000, rel=0.05)
    assert float(big["long_axis_mm"]) == pytest.approx(16.0, abs=0.8 + 1e-6)  # one voxel
    assert float(big["short_axis_mm"]) == pytest.approx(10.0, abs=0.8 + 1e-6)  # one voxel
    assert float(big["max_diameter_3d_mm"]) == pytest.approx(16.0, abs=0.8 + 1e-6)  # one voxel
    assert float(big["hu_mean"]) == pytest.approx(30.0)
    payload = json.loads((out / "report.json").read_text())
    assert payload["format"] == REPORT_FORMAT and payload["version"] == REPORT_VERSION
    assert payload["autolung_version"] and "plans_digest" in payload
    assert payload["options"]["connectivity"] == 3
    by_case = {c["case"]: c for c in payload["cases"]}
    assert by_case["case_a"]["lesion_count"] == 2 and by_case["case_a"]["largest_lesion"] == 1
    assert by_case["case_a"]["total_volume_ml"] == pytest.approx(sum(float(r["volume_ml"]) for r in rows), rel=1e-4)
    assert by_case["case_b"]["lesion_count"] == 0 and by_case["case_b"]["total_volume_ml"] == 0.0
    for name in ("case_a_lesion01.png", "case_a_lesion02.png"):
        assert (out / "pictures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "case_a.html").read_text()
    assert "pictures/case_a_lesion01.png" in summary and "2</b> lesion(s)" in summary
    assert "0</b> lesion(s)" in (out / "case_b.html").read_text()
    assert not list(out.rglob(".partial-*"))


def test_mask_on_another_grid_is_refused_before_writing(case_folders, monkeypatch, capsys):
    _write(np.zeros((16, 48, 40), np.uint8), case_folders / "masks" / "case_b.nii.gz")
    out = case_folders / "report"
    code = run_cli_group("report", ["report", "-i", str(case_folders / "images"), "-m", str(case_folders / "masks"),
                                    "-o", str(out)], monkeypatch)
    error = capsys.readouterr().err
    assert code == 1
    assert "case_b.nii.gz" in error and "shape" in error
    assert not out.exists()


def test_report_reads_dicom_series_images(tmp_path):
    from autolung.io.images import read_image
    from conftest import write_dicom_series

    write_dicom_series(tmp_path / "dicom" / "scan", "1.2.826.0.1.3680043.8.498.1", [0.0, 2.0, 4.0, 6.0])
    image, _ = read_image(tmp_path / "dicom" / "scan")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "dicom" / "scan")))
    source = reader.Execute()
    mask = np.zeros(image.shape[1:], np.uint8)
    mask[1:3, 2:5, 2:6] = 1
    written = sitk.GetImageFromArray(mask)
    written.CopyInformation(source)
    (tmp_path / "masks").mkdir()
    sitk.WriteImage(written, str(tmp_path / "masks" / "scan.nii.gz"))
    payload = api.report(tmp_path / "dicom", tmp_path / "masks", tmp_path / "out", pictures=False)
    lesion = payload["cases"][0]["lesions"][0]
    assert payload["cases"][0]["case"] == "scan"
    assert lesion["voxels"] == 24 and lesion["volume_mm3"] == pytest.approx(24 * 0.5 * 0.5 * 2.0)
    assert lesion["hu"]["min"] == 10.0 and lesion["hu"]["max"] == 20.0  # slice values 10 and 20


def test_2d_images_are_refused_naming_the_file(tmp_path):
    from autolung.errors import InvalidInputError

    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
        sitk.WriteImage(sitk.Image(16, 16, sitk.sitkUInt8), str(tmp_path / folder / "a.nii.gz"))
    with pytest.raises(InvalidInputError, match=r"a\.nii\.gz.*3D"):
        api.report(tmp_path / "images", tmp_path / "masks", tmp_path / "out")
    assert not (tmp_path / "out").exists()
