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
    assert summary["per_class"]["2"]["hd95"]["n_undefined"] == 1
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["cases"][1]["metrics"]["2"]["hd95"] is None   # NaN is null in JSON
    assert written["per_class"]["2"]["hd95"]["mean"] == 0.0      # case a: both empty -> 0
    assert written["lesions"]["1"]["lesions_tp"] == 2
    rows = list(csv.DictReader((tmp_path / "out" / "summary_cases.csv").open()))
    assert {(r["case_id"], r["label"]) for r in rows} == {("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")}
