"""The predict / export_model / install_model / evaluate commands, through the Typer app."""
from __future__ import annotations

import json

import SimpleITK as sitk
from typer.testing import CliRunner

from autolung_cli.app import _register_commands, app

from conftest import make_case
from .fake_model import tiny_plans, write_fake_model

_register_commands()
runner = CliRunner()


def test_predict_export_install_evaluate(tmp_path, data_root):
    results = data_root.results_dataset("Tiny_CT")
    write_fake_model(results / "3d_fullres__default", tiny_plans(), folds=(0, 1), bias=0.4)
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    image, label = make_case((8, 20, 20), seed=0)
    sitk.WriteImage(image, str(images / "c0_0000.nii.gz"))
    sitk.WriteImage(label, str(labels / "c0.nii.gz"))
    root = ["--root", str(data_root.root)]

    result = runner.invoke(app, ["predict", "-i", str(images), "-o", str(tmp_path / "out"), "-d", "Tiny_CT",
                                 "-c", "3d_fullres", "-f", "0", "--disable-tta", "--no-progress", *root])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "c0.nii.gz").is_file()

    result = runner.invoke(app, ["export_model", "-d", "Tiny_CT", "-c", "3d_fullres", "-o",
                                 str(tmp_path / "model.zip"), *root])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["predict", "-i", str(images), "-o", str(tmp_path / "out_zip"), "--model",
                                 str(tmp_path / "model.zip"), "--disable-tta", "--no-progress"])
    assert result.exit_code == 0, result.output
    other_root = tmp_path / "other_root"
    result = runner.invoke(app, ["install_model", str(tmp_path / "model.zip"), "--root", str(other_root)])
    assert result.exit_code == 0, result.output
    assert (other_root / "results" / "Tiny_CT" / "3d_fullres__default" / "fold_1" / "checkpoint_final.pt").is_file()

    result = runner.invoke(app, ["evaluate", "-r", str(labels), "-p", str(tmp_path / "out"), "-o",
                                 str(tmp_path / "eval" / "summary.json")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["labels"] == ["1", "2"] and summary["num_cases"] == 1
    assert (tmp_path / "eval" / "summary_cases.csv").is_file()


def test_ensemble_accepts_several_folders_after_one_flag(tmp_path):
    import numpy as np

    from autolung.inference.cv_outputs import save_cv_probabilities
    from autolung.io.geometry import ImageGeometry
    from autolung.labels import RegionMapping

    geometry = ImageGeometry((2, 4, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    for name, value in (("a", 0.9), ("b", 0.4)):
        save_cv_probabilities(tmp_path / name, "c0", np.full((1, 2, 4, 4), value, np.float32), geometry,
                              RegionMapping.one_per_label([1]))
    result = runner.invoke(app, ["ensemble", "-i", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "o" / "c0.nii.gz"))).min() == 1   # mean 0.65


def test_a_case_locked_by_a_live_process_is_left_to_it(tmp_path, data_root):
    """Locks are per case: another live process's case is skipped, the others are predicted."""
    import json
    import os
    import socket
    import subprocess
    import sys

    from autolung.inference.model import load_trained_model
    from autolung.inference.predictor import CASE_LOCK_PREFIX, PredictionOptions, predict_paths

    folder = write_fake_model(data_root.results_dataset("Tiny_CT") / "3d_fullres__default", tiny_plans(), bias=0.4)
    output = tmp_path / "masks"
    output.mkdir()
    (tmp_path / "in").mkdir()
    for case in ("a", "b"):
        sitk.WriteImage(make_case((4, 8, 8), seed=0)[0], str(tmp_path / "in" / f"{case}.nii.gz"))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    lock = output / f"{CASE_LOCK_PREFIX}a.lock"
    try:
        lock.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "purpose": "predict"}))
        written = predict_paths(tmp_path / "in", output, [load_trained_model(folder)], PredictionOptions(mirror=False))
    finally:
        holder.kill()
        holder.wait()
    assert [p.name for p in written] == ["b.nii.gz"]
    assert sorted(os.listdir(output)) == sorted([lock.name, "b.nii.gz", "autolung_predictions.json"])


def test_folds_after_one_flag_equal_the_comma_form(tmp_path, data_root):
    import numpy as np

    results = data_root.results_dataset("Tiny_CT")
    write_fake_model(results / "3d_fullres__default", tiny_plans(), folds=(0, 1), bias=0.4)
    images = tmp_path / "images"
    images.mkdir()
    sitk.WriteImage(make_case((8, 20, 20), seed=1)[0], str(images / "c1_0000.nii.gz"))
    outputs = {}
    for name, folds in (("spaced", ["-f", "0", "1"]), ("comma", ["-f", "0,1"])):
        result = runner.invoke(app, ["predict", "-i", str(images), "-o", str(tmp_path / name), "-d", "Tiny_CT",
                                     "-c", "3d_fullres", *folds, "--disable-tta", "--no-progress",
                                     "--root", str(data_root.root)])
        assert result.exit_code == 0, result.output
        outputs[name] = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name / "c1.nii.gz")))
    assert np.array_equal(outputs["spaced"], outputs["comma"])
