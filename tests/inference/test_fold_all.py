"""Fold ``all`` (trained on every case) through predict, export_model and find_best_configuration."""
from __future__ import annotations

import json
import zipfile

import SimpleITK as sitk

from cli_main import run_main
from conftest import make_case

from .fake_model import tiny_plans, write_fake_model


def _images(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    image, _ = make_case((8, 20, 20), seed=0)
    sitk.WriteImage(image, str(images / "c0_0000.nii.gz"))
    return images


def _record_folds(folder):
    return json.loads((folder / "autolung_predictions.json").read_text())["models"][0]["folds"]


def test_predict_and_export_fold_all(tmp_path, data_root, capsys, monkeypatch):
    folder = data_root.results_dataset("Tiny_CT") / "3d_fullres__default"
    write_fake_model(folder, tiny_plans(), folds=("all",), bias=0.4)
    images = _images(tmp_path)
    base = ["predict", "-i", images, "-d", "Tiny_CT", "-c", "3d_fullres", "--disable-tta", "--no-progress",
            "--root", data_root.root]

    code, output = run_main([*base, "-o", tmp_path / "default"], capsys, monkeypatch)
    assert code == 0, output  # fold all is the only trained fold: the default
    assert _record_folds(tmp_path / "default") == ["all"] and (tmp_path / "default" / "c0.nii.gz").is_file()

    write_fake_model(folder, tiny_plans(), folds=(0, 1), bias=0.4)
    code, output = run_main([*base, "-o", tmp_path / "cv"], capsys, monkeypatch)
    assert code == 0, output  # numbered folds exist: they are the default
    assert _record_folds(tmp_path / "cv") == [0, 1]
    code, output = run_main([*base, "-o", tmp_path / "all", "-f", "all"], capsys, monkeypatch)
    assert code == 0, output
    assert _record_folds(tmp_path / "all") == ["all"]
    code, output = run_main([*base, "-o", tmp_path / "bad", "-f", "0,everything"], capsys, monkeypatch)
    assert code == 1 and "fold 'everything' is neither a whole number nor 'all'" in output

    bundle = tmp_path / "model.zip"
    code, output = run_main(["export_model", "-d", "Tiny_CT", "-c", "3d_fullres", "-f", "all", "-o", bundle,
                             "--root", data_root.root], capsys, monkeypatch)
    assert code == 0, output
    names = zipfile.ZipFile(bundle).namelist()
    assert "3d_fullres__default/fold_all/checkpoint_final.pt" in names
    assert not any("fold_0" in name for name in names)
    code, output = run_main(["predict", "-i", images, "-o", tmp_path / "from_zip", "--model", bundle,
                             "--disable-tta", "--no-progress"], capsys, monkeypatch)
    assert code == 0, output
    assert _record_folds(tmp_path / "from_zip") == ["all"]
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "all" / "c0.nii.gz")))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "from_zip" / "c0.nii.gz")))
    assert (a == b).all()


def test_find_best_configuration_explains_fold_all_alone(tmp_path, data_root, capsys, monkeypatch):
    from autolung.inference.cv_outputs import save_cv_probabilities
    from autolung.io.geometry import ImageGeometry
    import numpy as np

    (data_root.raw / "Tiny_CT" / "labelsTr").mkdir(parents=True)
    folder = data_root.results_dataset("Tiny_CT") / "3d_fullres__default"
    write_fake_model(folder, tiny_plans(), folds=("all",))
    geometry = ImageGeometry(shape=(2, 4, 4), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                             direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    save_cv_probabilities(folder / "fold_all" / "validation", "c0", np.zeros((2, 2, 4, 4), np.float32), geometry,
                          tiny_plans().region_mapping)
    code, output = run_main(["find_best_configuration", "-d", "Tiny_CT", "--root", data_root.root],
                            capsys, monkeypatch)
    assert code == 1 and "fold all has no cross-validation to choose from" in output
