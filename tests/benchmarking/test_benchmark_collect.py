from __future__ import annotations

import json
import os

import pytest

from autolung.benchmarking.collect import fold_summary, label_names
from autolung.benchmarking.steps import fold_is_complete


def _touch(path, mtime, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def test_fold_summary_reads_log_and_times_validation_from_file_times(tmp_path):
    fold = tmp_path / "fold_0"
    records = [{"epoch": 1, "epoch_time_s": 5.0, "elapsed_s": 5.0},
               {"epoch": 2, "epoch_time_s": 6.0, "elapsed_s": 11.5}]
    _touch(fold / "training_log.jsonl", 1000.0, "\n".join(json.dumps(r) for r in records) + "\n")
    _touch(fold / "checkpoint_final.pt", 999.0)
    _touch(fold / "validation" / "a.nii.gz", 1004.0)
    _touch(fold / "validation" / "a.npz", 1004.5)
    _touch(fold / "validation" / "b.nii.gz", 1009.0)
    _touch(fold / "validation" / "b.npz", 1010.0)
    _touch(fold / "validation" / "summary.json", 1100.0)  # evaluation time is not inference
    summary = fold_summary(fold)
    assert summary == {"training_time_s": 11.5, "epochs": 2, "inference_s_per_case": pytest.approx(5.0),
                       "num_validation_cases": 2}
    assert fold_is_complete(fold, "abc") is False  # no training_info.json
    _touch(fold / "training_info.json", 1000.0, json.dumps({"plans_digest": "abc"}))
    assert fold_is_complete(fold, "abc") is True and fold_is_complete(fold, "other") is False


def test_fold_without_outputs_has_no_numbers(tmp_path):
    assert fold_summary(tmp_path) == {"training_time_s": None, "epochs": None, "inference_s_per_case": None,
                                      "num_validation_cases": 0}


def test_label_names_for_labels_and_regions():
    plans = type("Plans", (), {"labels": {"background": 0, "lung": 1, "tumour": 2}})()
    assert label_names(plans, ["1", "2", "1+2", "7"]) == {"1": "lung", "2": "tumour", "1+2": "lung+tumour", "7": "7"}
