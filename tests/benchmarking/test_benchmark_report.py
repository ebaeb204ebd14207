from __future__ import annotations

import csv
import json
import math

import pytest

from autolung.benchmarking.report import build_report, write_report
from autolung.benchmarking.stats import describe

from .helpers import lung_result, slices_result


def test_describe_leaves_out_undefined_values():
    stats = describe([0.9, 0.8, None, 0.7, math.nan, 0.6])
    assert stats["n"] == 4 and stats["n_undefined"] == 2
    assert stats["mean"] == pytest.approx(0.75)
    assert stats["std"] == pytest.approx(math.sqrt(0.0125))
    assert stats["median"] == pytest.approx(0.75)
    assert (stats["q1"], stats["q3"]) == (pytest.approx(0.675), pytest.approx(0.825))
    assert stats["iqr"] == pytest.approx(0.15)
    empty = describe([None, math.nan])
    assert empty["n"] == 0 and empty["n_undefined"] == 2 and math.isnan(empty["mean"])


@pytest.fixture
def written(tmp_path):
    report = build_report([lung_result(), slices_result()], settings={"epochs": 10})
    return report, write_report(report, tmp_path / "report")


def test_rows_hold_statistics_timing_and_plan(written):
    report, _ = written
    rows = {(r["dataset"], r["configuration"], r["class"]): r for r in report["rows"]}
    assert list(rows) == [("Lung_CT", "3d_fullres", "1"), ("Lung_CT", "3d_fullres", "2"), ("Slices2D", "2d", "1")]
    lung = rows[("Lung_CT", "3d_fullres", "1")]
    assert lung["class_name"] == "lung" and lung["n_cases"] == 4
    assert lung["dice_mean"] == pytest.approx(0.75) and lung["dice_median"] == pytest.approx(0.75)
    assert lung["hd95_mean"] == pytest.approx(5.0) and lung["nsd_mean"] == pytest.approx(0.8)
    assert lung["training_time_s"] == pytest.approx(220.0) and lung["training_time_per_fold_s"] == pytest.approx(110.0)
    assert lung["inference_s_per_case"] == pytest.approx(3.0)
    assert lung["spacing"] == "2.5x0.7x0.7" and lung["patch_size"] == "12x32x32" and lung["num_stages"] == 4
    assert lung["chosen"] is True and rows[("Slices2D", "2d", "1")]["chosen"] is False
    tumour = rows[("Lung_CT", "3d_fullres", "2")]
    assert tumour["hd95_n_undefined"] == 1 and tumour["hd95_mean"] == pytest.approx(10.0)
    assert tumour["lesion_sensitivity"] == 0.75 and tumour["lesion_fp_per_case"] == 1.5
    assert math.isnan(rows[("Slices2D", "2d", "1")]["lesion_sensitivity"])


def test_csv_has_one_row_per_dataset_configuration_class(written):
    _, paths = written
    with open(paths["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["dataset"], r["configuration"], r["class"]) for r in rows] == [
        ("Lung_CT", "3d_fullres", "1"), ("Lung_CT", "3d_fullres", "2"), ("Slices2D", "2d", "1")]
    assert float(rows[0]["dice_mean"]) == pytest.approx(0.75)
    assert float(rows[2]["dice_mean"]) == pytest.approx(0.75) and float(rows[2]["dice_q1"]) == pytest.approx(0.625)
    assert rows[2]["lesion_sensitivity"] == ""  # undefined -> empty cell
    assert rows[2]["batch_size"] == "12"


def test_json_holds_everything_and_nan_as_null(written):
    _, paths = written
    report = json.loads(paths["json"].read_text(encoding="utf-8"))  # strict JSON: no NaN literal
    assert report["format"] == "autolung-benchmark-report" and report["settings"] == {"epochs": 10}
    assert len(report["rows"]) == 3 and report["rows"][2]["lesion_sensitivity"] is None
    lung = report["datasets"][0]["configurations"]["3d_fullres"]
    assert [c["case_id"] for c in lung["cases"]] == ["a", "b", "c", "d"]
    assert lung["cases"][1]["metrics"]["2"]["hd95"] is None
    assert "NaN" not in paths["json"].read_text(encoding="utf-8")


def test_markdown_tables_and_figure(written):
    _, paths = written
    text = paths["md"].read_text(encoding="utf-8")
    assert "| Lung_CT | 3d_fullres * | lung (1) | 4 | 0.750 ± 0.112 | 0.750 [0.675, 0.825] |" in text
    assert "| Lung_CT | 3d_fullres | 0 1 | 10 | 220.0 | 110.0 | 3.00 |" in text
    assert "| Slices2D | 2d | 999 x 1 x 1 | 1 x 64 x 64 | 12 | 5 | 32, 64, 128, 256, 512 |" in text
    assert "| Lung_CT | 3d_fullres | 0.560 | 0.580 | 1: largest_component |" in text
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["figure"].stat().st_size > 5000


def test_failed_dataset_is_listed_and_empty_report_still_written(tmp_path):
    failed = {"dataset": "Broken", "labels": {}, "failed": {"step": "verify", "message": "label missing"},
              "best": None, "configurations": {}}
    paths = write_report(build_report([failed]), tmp_path)
    assert "- **Broken**, step `verify`: label missing" in paths["md"].read_text(encoding="utf-8")
    assert paths["csv"].read_text(encoding="utf-8").count("\n") == 1  # header only
    assert paths["figure"].read_bytes()[:4] == b"\x89PNG"
