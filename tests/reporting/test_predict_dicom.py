"""``predict --format dicom-seg --report --sr`` end to end with a tiny model on a generated DICOM series."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

pytest.importorskip("highdicom", reason="highdicom not installed (pip install highdicom)")

import highdicom as hd  # noqa: E402
import pydicom  # noqa: E402

from autolung.io.dicom import series_files  # noqa: E402
from autolung.io.images import read_label  # noqa: E402
from autolung_cli.app import _register_commands, app  # noqa: E402
from inference.fake_model import tiny_plans, write_fake_model  # noqa: E402
from .dicom_tools import dciodvfy_errors, write_ct_series  # noqa: E402
from .shapes import oblique_direction  # noqa: E402

_register_commands()
runner = CliRunner()


@pytest.fixture
def model_and_series(tmp_path, data_root):
    write_fake_model(data_root.results_dataset("Tiny_CT") / "3d_fullres__default", tiny_plans(), bias=0.4)
    volume = np.random.default_rng(0).normal(-600, 300, size=(8, 24, 24)).astype(np.int16)
    write_ct_series(tmp_path / "scans" / "patient1", volume, (2.5, 0.7, 0.8), oblique_direction(), (-50.0, 20.0, 0.0))
    return data_root, tmp_path / "scans"


@pytest.mark.slow
def test_predict_writes_seg_report_and_sr(model_and_series, tmp_path):
    root, scans = model_and_series
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", "-i", str(scans), "-o", str(out), "-d", "Tiny_CT", "-c", "3d_fullres",
                                 "-f", "0", "--disable-tta", "--no-progress", "--format", "dicom-seg", "--report",
                                 "--sr", "--root", str(root.root)])
    assert result.exit_code == 0, result.output
    mask, _ = read_label(out / "patient1.nii.gz")
    assert dciodvfy_errors(out / "dicom" / "patient1_seg.dcm") == []
    seg = hd.seg.segread(out / "dicom" / "patient1_seg.dcm")
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in series_files(scans / "patient1")]
    back = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True,
                                             skip_overlap_checks=True)
    numbers = {d.SegmentLabel: d.SegmentNumber for d in seg.SegmentSequence}
    assert set(numbers) == {"l1", "l2"}
    expected = np.zeros_like(back)
    for value in (1, 2):
        expected[mask == value] = numbers[f"l{value}"]
    assert np.array_equal(back, expected)
    payload = json.loads((out / "report" / "report.json").read_text())
    assert payload["plans_digest"] == tiny_plans().digest()
    case = payload["cases"][0]
    assert case["case"] == "patient1"
    assert sum(l["voxels"] for l in case["lesions"]) == int(np.count_nonzero(mask))
    assert dciodvfy_errors(out / "report" / "dicom" / "patient1_sr.dcm") == []
    assert (out / "report" / "lesions.csv").is_file() and (out / "report" / "patient1.html").is_file()


def test_dicom_seg_for_non_dicom_input_is_refused_before_predicting(model_and_series, tmp_path):
    root, _ = model_and_series
    (tmp_path / "nifti").mkdir()
    sitk.WriteImage(sitk.Image(24, 24, 8, sitk.sitkInt16), str(tmp_path / "nifti" / "c0_0000.nii.gz"))
    result = runner.invoke(app, ["predict", "-i", str(tmp_path / "nifti"), "-o", str(tmp_path / "out"), "-d",
                                 "Tiny_CT", "-c", "3d_fullres", "-f", "0", "--no-progress", "--format", "dicom-seg",
                                 "--root", str(root.root)])
    assert result.exit_code != 0
    assert "needs DICOM series" in str(result.exception) and "c0_0000.nii.gz" in str(result.exception)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_predict_writes_rtstruct(model_and_series, tmp_path):
    root, scans = model_and_series
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", "-i", str(scans), "-o", str(out), "-d", "Tiny_CT", "-c", "3d_fullres",
                                 "-f", "0", "--disable-tta", "--no-progress", "--format", "rtstruct", "--anonymize",
                                 "--root", str(root.root)])
    assert result.exit_code == 0, result.output
    assert dciodvfy_errors(out / "dicom" / "patient1_rtstruct.dcm") == []
    rt = pydicom.dcmread(out / "dicom" / "patient1_rtstruct.dcm")
    assert sorted(r.ROIName for r in rt.StructureSetROISequence) == ["l1", "l2"]
    assert str(rt.PatientName) == "ANONYMOUS" and rt.PatientID == "ANONYMOUS"


@pytest.mark.slow
def test_fractional_seg_holds_the_saved_probabilities(model_and_series, tmp_path):
    from autolung.inference.cv_outputs import load_cv_probabilities

    root, scans = model_and_series
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", "-i", str(scans), "-o", str(out), "-d", "Tiny_CT", "-c", "3d_fullres",
                                 "-f", "0", "--disable-tta", "--no-progress", "--format", "dicom-seg", "--seg-type",
                                 "fractional", "--save-probabilities", "--root", str(root.root)])
    assert result.exit_code == 0, result.output
    assert dciodvfy_errors(out / "dicom" / "patient1_seg.dcm") == []
    seg = hd.seg.segread(out / "dicom" / "patient1_seg.dcm")
    assert seg.SegmentationType == "FRACTIONAL"
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in series_files(scans / "patient1")]
    stored = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1, 2],
                                               rescale_fractional=True, dtype=np.float32)
    saved = load_cv_probabilities(out / "patient1.npz")
    expected = np.moveaxis(saved.probabilities, 0, -1)
    assert np.abs(stored - expected).max() <= 0.5 / 255 + 1e-3
