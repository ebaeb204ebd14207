"""A corpus of broken inputs through the real CLI: one clear line, a non-zero exit, nothing written.

Every broken file is generated here (``corpus.py``), not committed. The bulk runs through
``autolung_cli.app.main`` in this process (the real entry point, fast); a sample also runs as
``python -m autolung_cli`` subprocesses, with and without ``--debug``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import autolung_cli.app as app_module
from conftest import make_case, write_tiny_msd
from inference.fake_model import tiny_plans, write_fake_model

from .corpus import IMAGE_CORPUS
from .helpers import assert_one_line_error, run_cli_inprocess, run_cli_subprocess, snapshot

SHAPE = (6, 16, 16)


@pytest.fixture(autouse=True)
def _all_commands():
    app_module._register_commands()


@pytest.fixture
def cli(monkeypatch, capsys):
    return lambda *args: run_cli_inprocess(monkeypatch, capsys, *args)


@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model_root")
    write_fake_model(root / "results" / "Tiny_CT" / "3d_fullres__default", tiny_plans(), folds=(0,), bias=0.4)
    return root


def _predict_args(source: Path, output: Path, root: Path) -> list[str]:
    return ["predict", "-i", str(source), "-o", str(output), "-d", "Tiny_CT", "-c", "3d_fullres", "-f", "0",
            "--disable-tta", "--no-progress", "--root", str(root)]


# ---------------------------------------------------------------- broken images: predict, evaluate

@pytest.mark.parametrize("name", sorted(IMAGE_CORPUS))
def test_predict_refuses_broken_image(name, tmp_path, model_root, cli):
    writer, words = IMAGE_CORPUS[name]
    inputs = tmp_path / "in"
    inputs.mkdir()
    broken = writer(inputs)
    output = tmp_path / "out"
    before = snapshot(inputs, model_root)
    code, out, err = cli(*_predict_args(inputs, output, model_root))
    assert_one_line_error(code, out, err, broken, *words)
    assert snapshot(inputs, model_root) == before
    assert not output.exists()


EVALUATE_CORPUS = [n for n in sorted(IMAGE_CORPUS) if not n.startswith(("dicom", "nan", "inf", "one_voxel", "four"))]


@pytest.mark.parametrize("name", EVALUATE_CORPUS)
def test_evaluate_refuses_broken_prediction(name, tmp_path, cli):
    writer, words = IMAGE_CORPUS[name]
    reference, prediction, scratch = tmp_path / "ref", tmp_path / "pred", tmp_path / "scratch"
    for folder in (reference, prediction, scratch):
        folder.mkdir()
    broken = writer(scratch)
    ending = "".join(broken.suffixes)
    _, label = make_case((6, 16, 16), seed=0)
    sitk.WriteImage(label, str(reference / f"c0{ending}"))
    target = prediction / f"c0{ending}"
    shutil.move(broken, target)
    before = snapshot(reference, prediction)
    code, out, err = cli("evaluate", "-r", str(reference), "-p", str(prediction))
    assert_one_line_error(code, out, err, target)
    assert snapshot(reference, prediction) == before   # no summary.json, no CSV


def test_predict_output_folder_equal_to_input_is_refused(tmp_path, model_root, cli):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sitk.WriteImage(make_case((6, 16, 16), seed=0)[0], str(inputs / "c0_0000.nii.gz"))
    before = snapshot(inputs)
    code, out, err = cli(*_predict_args(inputs, inputs, model_root))
    assert_one_line_error(code, out, err, inputs, "input folder")
    assert snapshot(inputs) == before


def test_predict_with_hand_edited_invalid_plans_is_refused(tmp_path, cli):
    root = tmp_path / "root"
    folder = write_fake_model(root / "results" / "Tiny_CT" / "3d_fullres__default", tiny_plans(), folds=(0,))
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["patch_size"] = "big"
    (folder / "plans.json").write_text(json.dumps(plans))
    inputs = tmp_path / "in"
    inputs.mkdir()
    sitk.WriteImage(make_case((6, 16, 16), seed=0)[0], str(inputs / "c0.nii.gz"))
    code, out, err = cli(*_predict_args(inputs, tmp_path / "out", root))
    assert_one_line_error(code, out, err, folder / "plans.json", "patch_size")
    assert not (tmp_path / "out").exists()


def test_predict_refuses_a_model_whose_plans_do_not_match_its_weights(tmp_path, cli):
    root = tmp_path / "root"
    folder = write_fake_model(root / "results" / "Tiny_CT" / "3d_fullres__default", tiny_plans(), folds=(0,))
    edited = tiny_plans(spacing=(2.0, 0.7, 0.7))   # valid plans, but not the ones the weights were trained with
    edited.save(folder / "plans.json")
    inputs = tmp_path / "in"
    inputs.mkdir()
    sitk.WriteImage(make_case((6, 16, 16), seed=0)[0], str(inputs / "c0.nii.gz"))
    code, out, err = cli(*_predict_args(inputs, tmp_path / "out", root))
    assert_one_line_error(code, out, err, folder, "digest")
    assert not (tmp_path / "out").exists()


def test_case_ids_with_spaces_and_unicode_are_kept(tmp_path, model_root, cli):
    """Not an error: such ids round-trip (the mask carries the same id)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("case one.nii.gz", "cäse_ü.nii.gz"):
        sitk.WriteImage(make_case((6, 16, 16), seed=0)[0], str(inputs / name))
    code, out, err = cli(*_predict_args(inputs, tmp_path / "out", model_root))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == ["case one.nii.gz", "cäse_ü.nii.gz"]


# ------------------------------------------------------------- broken datasets: plan_and_preprocess

def _edit(folder: Path, **changes) -> None:
    payload = json.loads((folder / "dataset.json").read_text())
    payload.update(changes)
    (folder / "dataset.json").write_text(json.dumps(payload))


def _drop(folder: Path, key: str) -> None:
    payload = json.loads((folder / "dataset.json").read_text())
    payload.pop(key)
    (folder / "dataset.json").write_text(json.dumps(payload))


def _rewrite(path: Path, array: np.ndarray, **geometry) -> None:
    reference = sitk.ReadImage(str(path))
    image = sitk.GetImageFromArray(array)
    if array.shape == sitk.GetArrayViewFromImage(reference).shape:
        image.CopyInformation(reference)
    for key, value in geometry.items():
        getattr(image, f"Set{key.capitalize()}")(value)
    sitk.WriteImage(image, str(path))


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _label(folder: Path) -> Path:
    return folder / "labelsTr" / "case_001.nii.gz"


def _image(folder: Path) -> Path:
    return folder / "imagesTr" / "case_001.nii.gz"


def _nan_image(folder: Path) -> None:
    array = _array(_image(folder)).astype(np.float32)
    array[1, 2, 3] = np.nan
    _rewrite(_image(folder), array)


def _escape(folder: Path) -> None:
    outside = folder.parent / "outside.nii.gz"
    shutil.copy(_image(folder), outside)
    _edit(folder, training=[{"image": str(outside), "label": "./labelsTr/case_000.nii.gz"}])


def _replace_with_broken(writer):
    def breaker(folder: Path) -> None:
        scratch = folder.parent / "scratch"
        scratch.mkdir(exist_ok=True)
        shutil.move(writer(scratch), _image(folder))
    return breaker


# name -> (breaker, file named in the error (relative to the dataset), words)
DATASET_CORPUS = {
    "invalid_json": (lambda f: (f / "dataset.json").write_text("{not json"), "dataset.json", ("invalid JSON",)),
    "missing_labels": (lambda f: _drop(f, "labels"), "dataset.json", ("labels",)),
    "missing_training": (lambda f: _drop(f, "training"), "dataset.json", ("training",)),
    "labels_wrong_type": (lambda f: _edit(f, labels=["background", "bright"]), "dataset.json", ("labels",)),
    "training_wrong_type": (lambda f: _edit(f, training="all"), "dataset.json", ("training",)),
    "label_value_not_a_number": (lambda f: _edit(f, labels={"0": "background", "one": "bright"}), "dataset.json",
                                 ("labels",)),
    "path_with_dotdot": (lambda f: _edit(f, training=[{"image": "../outside.nii.gz", "label": "./labelsTr/x.nii.gz"}]),
                         "dataset.json", ("escapes",)),
    "absolute_path_outside": (_escape, "dataset.json", ("escapes",)),
    "unknown_channel_names": (lambda f: _edit(f, modality={"0": "CT", "1": "FLAIR"}), "imagesTr/case_000.nii.gz",
                              ("channel",)),
    "label_values_outside_dataset_json": (lambda f: _rewrite(_label(f), (_array(_label(f)) * 3).astype(np.uint8)),
                                          "labelsTr/case_001.nii.gz", ("does not declare",)),
    "image_label_shapes_differ": (lambda f: _rewrite(_label(f), np.zeros((6, 16, 15), np.uint8)),
                                  "labelsTr/case_001.nii.gz", ("shape",)),
    "image_label_geometry_differs": (lambda f: _rewrite(_label(f), _array(_label(f)), origin=(0.0, 0.0, 50.0)),
                                     "labelsTr/case_001.nii.gz", ("origin",)),
    "nan_voxels_in_training_image": (_nan_image, "imagesTr/case_001.nii.gz", ("NaN",)),
    "truncated_training_image": (_replace_with_broken(IMAGE_CORPUS["truncated_nii_gz"][0]),
                                 "imagesTr/case_001.nii.gz", ("truncated",)),
    "zero_byte_training_image": (_replace_with_broken(IMAGE_CORPUS["zero_bytes"][0]), "imagesTr/case_001.nii.gz",
                                 ("empty",)),
    "four_d_training_image": (_replace_with_broken(IMAGE_CORPUS["four_d"][0]), "imagesTr/case_001.nii.gz",
                              ("channel",)),
}


@pytest.mark.parametrize("name", sorted(DATASET_CORPUS))
def test_plan_and_preprocess_refuses_broken_dataset(name, data_root, cli):
    breaker, named, words = DATASET_CORPUS[name]
    folder = write_tiny_msd(data_root.raw / "Tiny_CT", num_cases=3, shape=SHAPE)
    breaker(folder)
    before = snapshot(data_root.root)
    code, out, err = cli("plan_and_preprocess", "-d", "Tiny_CT", "--root", str(data_root.root), "-np", "1",
                         "--planner", "default", "-c", "3d_fullres", "--no-progress")
    assert_one_line_error(code, out, err, folder / named, *words)
    assert snapshot(data_root.root) == before


RECOVERABLE = {
    "geometry_off_by_float_noise": lambda f: _rewrite(_label(f), _array(_label(f)), origin=(-12.5 + 1e-6, 30.0, 4.0)),
    "float_label_with_whole_values": lambda f: _rewrite(_label(f), _array(_label(f)).astype(np.float32)),
    "case_id_with_space": lambda f: (shutil.move(_image(f), f / "imagesTr" / "case 1.nii.gz"),
                                     shutil.move(_label(f), f / "labelsTr" / "case 1.nii.gz"),
                                     _edit(f, training=[{"image": "./imagesTr/case_000.nii.gz",
                                                         "label": "./labelsTr/case_000.nii.gz"},
                                                        {"image": "./imagesTr/case 1.nii.gz",
                                                         "label": "./labelsTr/case 1.nii.gz"}])),
}


@pytest.mark.parametrize("name", sorted(RECOVERABLE))
def test_recoverable_problems_are_reported_and_processing_goes_on(name, data_root, cli, caplog):
    folder = write_tiny_msd(data_root.raw / "Tiny_CT", num_cases=2, shape=SHAPE)
    RECOVERABLE[name](folder)
    code, out, err = cli("plan_and_preprocess", "-d", "Tiny_CT", "--root", str(data_root.root), "-np", "1",
                         "--planner", "default", "-c", "3d_fullres", "--no-progress")
    assert code == 0, err
    assert "Traceback" not in err
    preprocessed = data_root.preprocessed / "Tiny_CT" / "3d_fullres"
    assert len(list(preprocessed.glob("*_seg.npy"))) == 2
    said = {"float_label_with_whole_values": "whole-number values; converted to integers",
            "geometry_off_by_float_noise": "by float noise only"}.get(name)
    if said:
        assert said in caplog.text


def test_hand_edited_invalid_plans_stop_preprocess_and_change_nothing(data_root, cli):
    write_tiny_msd(data_root.raw / "Tiny_CT", num_cases=2, shape=SHAPE)
    args = ("--root", str(data_root.root), "-np", "1", "--no-progress")
    code, _, err = cli("plan_and_preprocess", "-d", "Tiny_CT", "--planner", "default", "-c", "3d_fullres", *args)
    assert code == 0, err
    plans_file = data_root.plans_file("Tiny_CT")
    plans = json.loads(plans_file.read_text())
    plans["configurations"]["3d_fullres"]["batch_size"] = -3
    plans_file.write_text(json.dumps(plans))
    before = snapshot(data_root.root)
    code, out, err = cli("preprocess", "-d", "Tiny_CT", "-c", "3d_fullres", *args)
    assert_one_line_error(code, out, err, plans_file, "batch_size")
    assert snapshot(data_root.root) == before


# ---------------------------------------------------------------- the real process, a sample

def test_subprocess_sample_one_line_and_debug_traceback(tmp_path, model_root):
    inputs = tmp_path / "in"
    inputs.mkdir()
    broken = IMAGE_CORPUS["truncated_nii_gz"][0](inputs)
    result = run_cli_subprocess(*_predict_args(inputs, tmp_path / "out", model_root))
    assert_one_line_error(result.returncode, result.stdout, result.stderr, broken, "truncated")
    assert not (tmp_path / "out").exists()
    debug = run_cli_subprocess("--debug", *_predict_args(inputs, tmp_path / "out", model_root))
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "InvalidInputError" in debug.stderr
    dataset = write_tiny_msd(tmp_path / "raw" / "Bad", num_cases=1, shape=SHAPE)
    (dataset / "dataset.json").write_text("[1, 2")
    result = run_cli_subprocess("plan_and_preprocess", "-d", str(dataset), "--root", str(tmp_path), "-np", "1")
    assert_one_line_error(result.returncode, result.stdout, result.stderr, dataset / "dataset.json", "JSON")
    assert not (tmp_path / "preprocessed").exists()
