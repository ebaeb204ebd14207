from __future__ import annotations

import json
import math

import pytest

from autolung.benchmarking import nnunet_results
from autolung.benchmarking.compare import add_nnunet
from autolung.benchmarking.report import Comparisons, build_report
from autolung.errors import InvalidInputError

from .helpers import lung_result


def _summary(cases: list[tuple[str, dict]]) -> str:
    per_case = [{"metrics": {k: {"Dice": v, "IoU": v} for k, v in dice.items()},
                 "reference_file": f"/data/labelsTr/{name}.nii.gz", "prediction_file": f"/pred/{name}.nii.gz"}
                for name, dice in cases]
    # nnU-Net writes NaN literals, which json accepts; write one by hand.
    return json.dumps({"foreground_mean": {"Dice": 0.5}, "mean": {"1": {"Dice": 0.5}},
                       "metric_per_case": per_case}).replace("-1.0", "NaN")


@pytest.fixture
def nnunet_folder(tmp_path):
    results = tmp_path / "nnUNet_results"
    default = results / "Dataset004_Lung_CT" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    for fold, cases in {0: [("a", {"1": 0.9, "2": 0.4}), ("b", {"1": 0.7, "2": -1.0})],
                        1: [("c", {"1": 0.8, "(1, 2)": 0.6})]}.items():
        folder = default / f"fold_{fold}" / "validation"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(_summary(cases))
    other = results / "Dataset004_Lung_CT" / "nnUNetTrainer_5epochs__nnUNetPlans__3d_fullres" / "fold_0" / "validation"
    other.mkdir(parents=True)
    (other / "summary.json").write_text(_summary([("a", {"1": 0.1})]))
    (results / "Dataset009_Spleen" / "nnUNetTrainer__nnUNetPlans__2d").mkdir(parents=True)  # no folds: ignored
    return results


def test_reads_per_case_dice_pooled_over_folds(nnunet_folder):
    results = nnunet_results.read_nnunet_results(nnunet_folder)
    assert list(results) == ["Dataset004_Lung_CT"]
    entry = results["Dataset004_Lung_CT"]["nnUNetTrainer__nnUNetPlans__3d_fullres"]
    assert entry["folds"] == ["0", "1"] and entry["configuration"] == "3d_fullres"
    assert [c["case_id"] for c in entry["cases"]] == ["a", "b", "c"]
    assert entry["per_class"]["1"]["mean"] == pytest.approx(0.8) and entry["per_class"]["1"]["n"] == 3
    assert entry["per_class"]["2"]["mean"] == pytest.approx(0.4) and entry["per_class"]["2"]["n_undefined"] == 2
    assert entry["per_class"]["1+2"]["mean"] == pytest.approx(0.6)
    # One dataset folder works too.
    assert list(nnunet_results.read_nnunet_results(nnunet_folder / "Dataset004_Lung_CT")) == ["Dataset004_Lung_CT"]


def test_dataset_names_match_without_prefix_or_by_mapping():
    available = ["Dataset004_Hippocampus", "Dataset010_Colon"]
    assert nnunet_results.match_dataset("Task04_Hippocampus", available) == "Dataset004_Hippocampus"
    assert nnunet_results.match_dataset("hippocampus", available) == "Dataset004_Hippocampus"
    assert nnunet_results.match_dataset("Liver", available) is None
    mapping = nnunet_results.parse_name_mapping(["A=Dataset010_Colon"])
    assert nnunet_results.match_dataset("A", available, mapping) == "Dataset010_Colon"
    with pytest.raises(InvalidInputError):
        nnunet_results.parse_name_mapping(["no-equals-sign"])


def test_nnunet_column_prefers_default_trainer(nnunet_folder):
    results = nnunet_results.read_nnunet_results(nnunet_folder)
    report = build_report([lung_result()], comparisons=Comparisons(nnunet=results, nnunet_source=str(nnunet_folder)))
    rows = {r["class"]: r for r in report["rows"]}
    assert rows["1"]["dice_mean_nnunet"] == pytest.approx(0.8)
    assert rows["1"]["nnunet_folder"] == "nnUNetTrainer__nnUNetPlans__3d_fullres"
    assert rows["2"]["dice_mean_nnunet"] == pytest.approx(0.4) and rows["2"]["n_cases_nnunet"] == 3
    assert report["comparisons"]["nnunet"]["datasets"] == {"Lung_CT": "Dataset004_Lung_CT"}
    assert "dice_mean_nnunet" in report["columns"]


def test_unmatched_dataset_gets_empty_nnunet_columns(nnunet_folder):
    results = nnunet_results.read_nnunet_results(nnunet_folder)
    row = {"dataset": "Other", "configuration": "3d_fullres", "class": "1"}
    assert add_nnunet([row], results) == {}
    assert math.isnan(row["dice_mean_nnunet"]) and row["nnunet_folder"] == ""


def test_missing_or_empty_results_folder_is_an_error(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        nnunet_results.read_nnunet_results(tmp_path / "absent")
    with pytest.raises(InvalidInputError, match="no nnU-Net validation summaries"):
        nnunet_results.read_nnunet_results(tmp_path)
