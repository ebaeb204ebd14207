"""predict -npp/-nps: preparation and export overlap the network, with the same masks, records,
skips and error handling as the serial loop."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from autolung.errors import AutolungError
from autolung.inference import overlapped
from autolung.inference.model import load_trained_model
from autolung.inference.predictor import PredictionOptions, predict_paths
from autolung.utils.atomic import TEMP_MARKER

from cli_main import run_main
from conftest import make_case
from .fake_model import tiny_plans, write_fake_model


def _cases(folder, count=4):
    folder.mkdir()
    for index in range(count):
        image, _ = make_case((8, 20, 20 + 2 * index), seed=index)
        sitk.WriteImage(image, str(folder / f"c{index}_0000.nii.gz"))
    return folder


def _arrays(folder):
    return {p.name: sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted(folder.glob("c*.nii.gz"))}


@pytest.mark.parametrize("workers", [("1", "1"), ("2", "0"), ("0", "2")])
def test_overlapped_cli_equals_serial(tmp_path, data_root, capsys, monkeypatch, workers):
    write_fake_model(data_root.results_dataset("Tiny_CT") / "3d_fullres__default", tiny_plans(), folds=(0, 1),
                     bias=0.4)
    images = _cases(tmp_path / "images")
    base = ["predict", "-i", images, "-d", "Tiny_CT", "-c", "3d_fullres", "--disable-tta", "--no-progress",
            "--device", "cpu", "--root", data_root.root]
    code, output = run_main([*base, "-o", tmp_path / "serial"], capsys, monkeypatch)
    assert code == 0, output
    code, output = run_main([*base, "-o", tmp_path / "overlap", "-npp", workers[0], "-nps", workers[1]],
                            capsys, monkeypatch)
    assert code == 0, output
    serial, overlap = _arrays(tmp_path / "serial"), _arrays(tmp_path / "overlap")
    assert list(overlap) == ["c0.nii.gz", "c1.nii.gz", "c2.nii.gz", "c3.nii.gz"]
    assert all(np.array_equal(serial[name], overlap[name]) for name in serial)
    record = json.loads((tmp_path / "overlap" / "autolung_predictions.json").read_text())
    assert sorted(record["cases"]) == ["c0", "c1", "c2", "c3"]
    assert not any(p.name.startswith((".autolung-case-", TEMP_MARKER)) for p in (tmp_path / "overlap").iterdir())


def test_overlapped_ensemble_with_probabilities_and_rerun_skips(tmp_path):
    model = load_trained_model(write_fake_model(tmp_path / "m", tiny_plans(), folds=(0,), bias=0.3))
    images = _cases(tmp_path / "images", count=3)
    serial = PredictionOptions(mirror=False, save_probabilities=True, device="cpu")
    overlap = PredictionOptions(mirror=False, save_probabilities=True, device="cpu", preprocessing_workers=2,
                                export_workers=2)
    predict_paths(images, tmp_path / "a", [model, model], serial)
    masks = predict_paths(images, tmp_path / "b", [model, model], overlap)
    assert [m.name for m in masks] == ["c0.nii.gz", "c1.nii.gz", "c2.nii.gz"]
    assert all((tmp_path / "b" / f"c{i}.npz").is_file() for i in range(3))
    a, b = _arrays(tmp_path / "a"), _arrays(tmp_path / "b")
    assert all(np.array_equal(a[name], b[name]) for name in a)
    stamp = masks[0].stat().st_mtime_ns
    again = predict_paths(images, tmp_path / "b", [model, model], overlap)
    assert again == masks and masks[0].stat().st_mtime_ns == stamp


@pytest.mark.parametrize("stage", ["prepare", "compute", "export"])
def test_overlapped_error_names_the_case_and_leaves_only_complete_masks(tmp_path, monkeypatch, stage):
    model = load_trained_model(write_fake_model(tmp_path / "m", tiny_plans(), folds=(0,), bias=0.3))
    images = _cases(tmp_path / "images")
    original = getattr(overlapped._PredictionStages, stage)

    def failing(self, *args):
        case_id = args[0].case_id if stage == "prepare" else args[0].case.case_id
        if case_id == "c2":
            raise RuntimeError("injected failure")
        return original(self, *args)

    monkeypatch.setattr(overlapped._PredictionStages, stage, failing)
    options = PredictionOptions(mirror=False, device="cpu", preprocessing_workers=2, export_workers=1)
    with pytest.raises(AutolungError, match="case c2: .* failed \\(RuntimeError: injected failure\\)"):
        predict_paths(images, tmp_path / "out", [model], options)
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    # Cases before c2 are complete; nothing partial and no case lock is left behind.
    assert {"c0.nii.gz", "c1.nii.gz"} <= set(left) and "c2.nii.gz" not in left
    assert not any(name.startswith((".autolung-case-", TEMP_MARKER)) for name in left)
    monkeypatch.setattr(overlapped._PredictionStages, stage, original)
    masks = predict_paths(images, tmp_path / "out", [model], options)
    assert [m.name for m in masks] == ["c0.nii.gz", "c1.nii.gz", "c2.nii.gz", "c3.nii.gz"]


def test_negative_worker_count_is_refused(tmp_path):
    model = load_trained_model(write_fake_model(tmp_path / "m", tiny_plans(), folds=(0,), bias=0.3))
    images = _cases(tmp_path / "images", count=1)
    with pytest.raises(AutolungError, match="export_workers must be 0 or more, got -1"):
        predict_paths(images, tmp_path / "out", [model], PredictionOptions(export_workers=-1))
