"""End to end: ``autolung benchmark`` on a tiny generated CT dataset, then resumed with comparisons."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autolung.errors import AutolungError
from autolung.paths import DataRoot
from autolung_cli.app import _register_commands, app

_register_commands()
runner = CliRunner()
TINY = ["--epochs", "1", "--iters-per-epoch", "2", "--val-iters", "1", "--device", "cpu", "--num-workers", "0",
        "-np", "1", "-f", "0", "--time-budget", "60s", "--planner", "default"]


def _nnunet_results(folder: Path) -> Path:
    validation = folder / "Dataset001_Tiny" / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0" / "validation"
    validation.mkdir(parents=True)
    (validation / "summary.json").write_text(json.dumps({
        "foreground_mean": {"Dice": 0.8}, "mean": {"1": {"Dice": 0.9}, "2": {"Dice": 0.7}},
        "metric_per_case": [{"metrics": {"1": {"Dice": 0.9}, "2": {"Dice": 0.7}},
                             "reference_file": "gt/case_002.nii.gz", "prediction_file": "pred/case_002.nii.gz"}]}))
    return folder


@pytest.mark.slow
def test_tiny_benchmark_end_to_end_then_resume(data_root: DataRoot, tiny_msd: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = runner.invoke(app, ["benchmark", "-d", "Tiny_CT", "--root", str(data_root.root), "-o", str(report),
                                 *TINY])
    assert result.exit_code == 0, result.output
    for name in ("report.md", "report.csv", "report.json", "dice_boxplot.png", "state.json"):
        assert (report / name).is_file(), name
    assert (report / "dice_boxplot.png").read_bytes()[:4] == b"\x89PNG"
    with open(report / "report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["dataset"], r["configuration"], r["class"], r["class_name"]) for r in rows] == [
        ("Tiny_CT", "3d_fullres", "1", "bright"), ("Tiny_CT", "3d_fullres", "2", "dark")]
    assert all(0.0 <= float(r["dice_mean"]) <= 1.0 and float(r["training_time_s"]) > 0 for r in rows)
    assert rows[0]["n_cases"] == "1" and rows[0]["folds"] == "0" and rows[0]["chosen"] == "True"
    payload = json.loads((report / "report.json").read_text())
    entry = payload["datasets"][0]["configurations"]["3d_fullres"]
    assert entry["plan"]["patch_size"] and entry["folds"]["0"]["epochs"] == 1
    assert entry["folds"]["0"]["inference_s_per_case"] >= 0
    assert payload["datasets"][0]["best"]["configurations"][0]["configuration"] == "3d_fullres"
    # Fold 0 alone is a partial cross-validation: chosen anyway, and the report says so.
    assert payload["datasets"][0]["best"]["partial"]
    assert "partial cross-validation" in (report / "report.md").read_text()
    fold = data_root.training_output("Tiny_CT", "3d_fullres") / "fold_0"
    checkpoint_time = (fold / "checkpoint_final.pt").stat().st_mtime

    # Resume: nothing is trained again; comparisons only add columns.
    nnunet = _nnunet_results(tmp_path / "nnUNet_results")
    again = runner.invoke(app, ["benchmark", "-d", "Tiny_CT", "--root", str(data_root.root), "-o", str(report),
                                *TINY, "--compare", str(report), "--compare-nnunet", str(nnunet),
                                "--nnunet-name", "Tiny_CT=Dataset001_Tiny"])
    assert again.exit_code == 0, again.output
    assert (fold / "checkpoint_final.pt").stat().st_mtime == checkpoint_time
    with open(report / "report.csv", newline="") as handle:
        merged = list(csv.DictReader(handle))
    assert float(merged[0]["dice_mean_nnunet"]) == pytest.approx(0.9)
    assert merged[0]["dice_mean_other"] == merged[0]["dice_mean"]
    text = (report / "report.md").read_text()
    assert "Dice (other)" in text and "Dice (nnU-Net)" in text


def test_unknown_dataset_writes_report_and_exits_nonzero(data_root: DataRoot, tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = runner.invoke(app, ["benchmark", "-d", "Missing", "Absent", "--root", str(data_root.root),
                                 "-o", str(report)])
    assert result.exit_code == 1
    assert isinstance(result.exception, AutolungError) and "2 dataset(s) did not finish" in str(result.exception)
    text = (report / "report.md").read_text()
    assert "**Missing**" in text and "**Absent**" in text


def test_bad_fold_value_is_rejected(data_root: DataRoot, tmp_path: Path) -> None:
    result = runner.invoke(app, ["benchmark", "-d", "X", "--root", str(data_root.root), "-o", str(tmp_path),
                                 "-f", "zero"])
    assert result.exit_code == 1 and "fold numbers" in str(result.exception)
