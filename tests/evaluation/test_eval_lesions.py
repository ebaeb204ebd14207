"""Lesion-wise metrics on constructed cases, and evaluate_folders end to end."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from autolung.evaluation.evaluate import evaluate_folders
from autolung.evaluation.lesions import lesion_metrics, summarise_lesions


def _lesions_case():
    ref = np.zeros((10, 30, 30), dtype=bool)
    pred = np.zeros_like(ref)
    ref[2:4, 2:6, 2:6] = True        # lesion A (32 voxels): found exactly
    pred[2:4, 2:6, 2:6] = True
    ref[2:4, 20:24, 20:24] = True    # lesion B (32): found half (16 of 32 voxels predicted)
    pred[2:4, 20:22, 20:24] = True
    ref[7:9, 10:12, 10:12] = True    # lesion C (8): missed
    pred[6:9, 25:28, 2:5] = True     # a false positive (27 voxels)
    return ref, pred


def test_lesion_counts_and_per_lesion_dice():
    ref, pred = _lesions_case()
    result = lesion_metrics(ref, pred, spacing=(1, 1, 1))
    assert (result["tp"], result["fn"], result["fp"]) == (2, 1, 1)
    assert result["sensitivity"] == pytest.approx(2 / 3)
    assert result["lesion_dice"] == pytest.approx([1.0, 2 * 16 / (32 + 16), 0.0])
    assert result["lesion_volumes_ml"] == pytest.approx([0.032, 0.032, 0.008])


def test_min_overlap_makes_a_partial_hit_a_miss():
    ref, pred = _lesions_case()
    strict = lesion_metrics(ref, pred, min_overlap=0.6)
    assert (strict["tp"], strict["fn"]) == (1, 2)


def test_summary_pools_cases():
    ref, pred = _lesions_case()
    empty = np.zeros_like(ref)
    summary = summarise_lesions([lesion_metrics(ref, pred), lesion_metrics(empty, empty)])
    assert summary["lesion_sensitivity"] == pytest.approx(2 / 3)
    assert summary["fp_per_case"] == pytest.approx(0.5)
    assert math.isnan(lesion_metrics(empty, empty)["sensitivity"])


def _write(path, array, spacing=(2.0, 1.0, 1.0)):
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(tuple(reversed(spacing)))
    sitk.WriteImage(image, str(path))


def test_evaluate_folders_writes_json_and_csv(tmp_path):
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    ref, pred = _lesions_case()
    _write(ref_dir / "a.nii.gz", ref)
    _write(pred_dir / "a.nrrd", pred)       # formats may differ; case ids pair them
    _write(ref_dir / "b.nii.gz", ref * 2)
    _write(pred_dir / "b.nii.gz", np.zeros_like(ref))  # label 2 missed entirely: HD95 undefined
    summary = evaluate_folders(ref_dir, pred_dir, None, 2.0, tmp_path / "out" / "summary.json")
    assert summary["labels"] == ["1", "2"]
    # case a: label 2 empty in both (undefined, as nnU-Net); case b: missed (HD95 undefined)
    assert summary["per_class"]["2"]["hd95"]["n_undefined"] == 2
    assert summary["per_class"]["2"]["dice"] == {"mean": 0.0, "std": 0.0, "median": 0.0, "n": 1, "n_undefined": 1}
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["cases"][1]["metrics"]["2"]["hd95"] is None   # NaN is null in JSON
    assert written["cases"][0]["metrics"]["2"]["dice"] is None   # both empty: NaN, left out of the mean
    assert written["lesions"]["1"]["lesions_tp"] == 2
    rows = list(csv.DictReader((tmp_path / "out" / "summary_cases.csv").open()))
    assert {(r["case_id"], r["label"]) for r in rows} == {("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")}


def _cli(*args):
    from typer.testing import CliRunner

    from autolung_cli.app import _register_commands, app

    _register_commands()
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_evaluate_refuses_reference_cases_without_prediction_unless_allowed(tmp_path, capsys, monkeypatch):
    from cli_main import run_main

    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    ref, pred = _lesions_case()
    for case in ("a", "b", "c"):
        _write(ref_dir / f"{case}.nii.gz", ref)
    _write(pred_dir / "a.nii.gz", pred)
    code, output = run_main(["evaluate", "-r", ref_dir, "-p", pred_dir], capsys, monkeypatch)
    assert code == 1
    assert f"error: {pred_dir}: 2 reference case(s) have no prediction: b, c" in output
    assert not (pred_dir / "summary.json").exists()

    result = _cli("evaluate", "-r", ref_dir, "-p", pred_dir, "--allow-missing")
    assert result.exit_code == 0, result.output
    assert "2 reference case(s) without prediction were not evaluated: b, c" in result.output
    summary = json.loads((pred_dir / "summary.json").read_text())
    assert summary["num_cases"] == 1 and summary["missing_predictions"] == ["b", "c"]


def test_cli_evaluate_class_empty_in_both_is_nan_left_out_of_the_mean_and_counted(tmp_path):
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    ref, pred = _lesions_case()
    # a: label 1 only (label 2 empty in both); b: label 2 found exactly
    _write(ref_dir / "a.nii.gz", ref)
    _write(pred_dir / "a.nii.gz", pred)
    _write(ref_dir / "b.nii.gz", ref * 2)
    _write(pred_dir / "b.nii.gz", ref * 2)
    result = _cli("evaluate", "-r", ref_dir, "-p", pred_dir, "-l", "1", "-l", "2")
    assert result.exit_code == 0, result.output
    summary = json.loads((pred_dir / "summary.json").read_text())
    dice_2 = summary["per_class"]["2"]["dice"]
    assert dice_2["mean"] == 1.0 and dice_2["n"] == 1 and dice_2["n_undefined"] == 1
    assert summary["cases"][0]["metrics"]["2"]["dice"] is None
    dice_1 = summary["per_class"]["1"]["dice"]  # b: label 1 empty in both
    assert dice_1["n"] == 1 and dice_1["n_undefined"] == 1
    assert summary["mean_foreground_dice"] == pytest.approx((dice_1["mean"] + 1.0) / 2)


def test_cli_evaluate_ignore_label_leaves_unannotated_voxels_out(tmp_path):
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    ref = np.zeros((4, 10, 10), dtype=np.uint8)
    ref[:, 2:5, 2:5] = 1
    ref[:, :, 7:] = 3            # unannotated columns
    pred = (ref == 1).astype(np.uint8)
    pred[:, :, 8:] = 1           # whatever is predicted there counts nowhere
    _write(ref_dir / "a.nii.gz", ref)
    _write(pred_dir / "a.nii.gz", pred)
    result = _cli("evaluate", "-r", ref_dir, "-p", pred_dir, "--ignore-label", "3")
    assert result.exit_code == 0, result.output
    summary = json.loads((pred_dir / "summary.json").read_text())
    assert summary["labels"] == ["1"] and summary["ignore_label"] == 3
    metrics = summary["cases"][0]["metrics"]["1"]
    assert (metrics["dice"], metrics["tp"], metrics["fp"], metrics["fn"]) == (1.0, 36, 0, 0)
