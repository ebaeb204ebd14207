"""Prediction end to end with tiny random models: geometry kept, inputs of every kind, safety."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import skimage.io

from autolung.errors import InvalidInputError, InvalidPlansError
from autolung.inference import predictor
from autolung.inference.model import load_trained_model
from autolung.inference.predictor import PredictionOptions, predict_paths
from autolung.utils.atomic import TEMP_MARKER

from conftest import SHARED_DATA, make_case
from .fake_model import tiny_plans, write_fake_model

FAST = PredictionOptions(mirror=False, window_batch_size=4)


@pytest.fixture
def model_3d(tmp_path):
    return load_trained_model(write_fake_model(tmp_path / "model3d", tiny_plans(), folds=(0, 1), bias=0.3))


def assert_same_geometry(written: sitk.Image, original: sitk.Image) -> None:
    assert written.GetSize() == original.GetSize()
    np.testing.assert_allclose(written.GetSpacing(), original.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(written.GetOrigin(), original.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(written.GetDirection(), original.GetDirection(), atol=1e-6)


def _oblique(image: sitk.Image) -> sitk.Image:
    image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    return image


@pytest.mark.parametrize("ending", [".nii.gz", ".nrrd", ".mha"])
def test_single_file_keeps_geometry_and_format(tmp_path, model_3d, ending):
    image, _ = make_case((12, 30, 26), seed=1)
    source = tmp_path / "in" / f"case_0000{ending}"
    source.parent.mkdir()
    sitk.WriteImage(_oblique(image), str(source))
    [mask] = predict_paths(source, tmp_path / "out", [model_3d], FAST)
    assert mask.name == f"case{ending}"
    written = sitk.ReadImage(str(mask))
    assert_same_geometry(written, sitk.ReadImage(str(source)))
    labels = sitk.GetArrayFromImage(written)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}


def test_folder_of_cases_and_rerun_skips(tmp_path, model_3d):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        image, _ = make_case((8, 20, 20), seed=i)
        sitk.WriteImage(image, str(folder / f"c{i}_0000.nii.gz"))
    out = tmp_path / "out"
    masks = predict_paths(folder, out, [model_3d], PredictionOptions(window_batch_size=4, save_probabilities=True))
    assert [m.name for m in masks] == ["c0.nii.gz", "c1.nii.gz"]
    assert (out / "c0.npz").is_file()
    stamp = masks[0].stat().st_mtime_ns
    predict_paths(folder, out, [model_3d], PredictionOptions(window_batch_size=4, save_probabilities=True))
    assert masks[0].stat().st_mtime_ns == stamp


def test_output_equal_to_input_is_refused(tmp_path, model_3d):
    image, _ = make_case((8, 20, 20), seed=0)
    sitk.WriteImage(image, str(tmp_path / "a.nii.gz"))
    with pytest.raises(InvalidInputError, match="output folder is the input folder"):
        predict_paths(tmp_path, tmp_path, [model_3d], FAST)


def test_failure_mid_run_leaves_only_complete_masks(tmp_path, model_3d, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        sitk.WriteImage(make_case((8, 20, 20), seed=i)[0], str(folder / f"c{i}.nii.gz"))
    calls = {"n": 0}
    original = predictor.predict_case_labels

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected failure")
        return original(*args, **kwargs)

    monkeypatch.setattr(predictor, "predict_case_labels", failing)
    with pytest.raises(RuntimeError, match="injected"):
        predict_paths(folder, tmp_path / "out", [model_3d], FAST)
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert left == ["autolung_predictions.json", "c0.nii.gz"]
    assert json.loads((tmp_path / "out" / "autolung_predictions.json").read_text())["cases"] == ["c0"]
    assert sitk.ReadImage(str(tmp_path / "out" / "c0.nii.gz")).GetSize() == (20, 20, 8)
    monkeypatch.setattr(predictor, "predict_case_labels", original)
    predict_paths(folder, tmp_path / "out", [model_3d], FAST)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["autolung_predictions.json", "c0.nii.gz",
                                                                     "c1.nii.gz", "c2.nii.gz"]
    assert not any(p.name.startswith(TEMP_MARKER) for p in (tmp_path / "out").iterdir())


def test_png_2d_keeps_size(tmp_path):
    plans = tiny_plans(dim=2, spacing=(999.0, 1.0, 1.0), labels=(1,), scheme="zscore")
    model = load_trained_model(write_fake_model(tmp_path / "m2d", plans, bias=0.0))
    image = (np.random.default_rng(0).random((40, 52)) * 255).astype(np.uint8)
    folder = tmp_path / "in"
    folder.mkdir()
    skimage.io.imsave(folder / "slice_0000.png", image, check_contrast=False)
    [mask] = predict_paths(folder, tmp_path / "out", [model], PredictionOptions(window_batch_size=8))
    assert mask.suffix == ".png"
    assert skimage.io.imread(mask).shape == (40, 52)


def test_dicom_series_gives_nifti_with_same_geometry(tmp_path):
    series = SHARED_DATA / "dicom" / "LUNG1-002_ct_24slices"
    if not series.is_dir():
        pytest.skip(f"DICOM series not available at {series}")
    # Coarse spacing keeps the tiny network's input small; geometry is what is tested.
    model = load_trained_model(write_fake_model(tmp_path / "m", tiny_plans(spacing=(6.0, 8.0, 8.0))))
    [mask] = predict_paths(series, tmp_path / "out", [model], FAST)
    assert mask.name == "LUNG1-002_ct_24slices.nii.gz"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series)))
    assert_same_geometry(sitk.ReadImage(str(mask)), reader.Execute())


def test_digest_mismatch_is_refused(tmp_path):
    folder = write_fake_model(tmp_path / "m", tiny_plans(), digest="0123456789abcdef")
    with pytest.raises(InvalidPlansError, match="digest"):
        load_trained_model(folder)


def test_fold_average_matches_individual_folds(tmp_path, model_3d):
    image, _ = make_case((8, 20, 20), seed=3)
    geometry_source = tmp_path / "a.nii.gz"
    sitk.WriteImage(image, str(geometry_source))
    from autolung.io.images import read_image

    data, geometry = read_image(geometry_source)
    both = predictor.predict_case_probabilities(data.astype(np.float32), geometry, [model_3d], FAST)
    singles = []
    for fold in (0, 1):
        single = load_trained_model(model_3d.folder, [fold])
        singles.append(predictor.predict_case_probabilities(data.astype(np.float32), geometry, [single], FAST))
    np.testing.assert_allclose(both, np.mean(singles, axis=0), atol=1e-5)


def test_softmax_trained_model_gives_class_probabilities(tmp_path):
    import torch

    from autolung.inference.sliding_window import predict_sliding_window

    model = load_trained_model(write_fake_model(tmp_path / "m", tiny_plans(), softmax=True))
    data = np.random.default_rng(0).normal(size=(1, 8, 16, 16)).astype(np.float32)
    probabilities = predict_sliding_window(model.networks, data, (8, 16, 16), mirror_axes=None)
    inner = model.networks[0].network
    with torch.no_grad():
        expected = torch.softmax(inner(torch.from_numpy(data)[None]), 1)[0, 1:].numpy()
    assert probabilities.shape == (2, 8, 16, 16)
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
