from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autolung.errors import InvalidInputError
from autolung.paths import DataRoot
from autolung.preprocessing.storage import PreprocessedDataset
from autolung_cli.app import _register_commands, app
from autolung_cli.multivalue import regroup_multi_value_args
from conftest import shared_dataset

_register_commands()
runner = CliRunner()


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_regroup_multi_value_args() -> None:
    args = ["-d", "X", "-c", "2d", "3d_fullres", "--patch-size", "32", "64", "64", "-np", "2"]
    assert regroup_multi_value_args(args, {"-c", "--patch-size"}) == [
        "-d", "X", "-c", "2d", "-c", "3d_fullres", "--patch-size", "32", "--patch-size", "64",
        "--patch-size", "64", "-np", "2"]


def test_plan_and_preprocess_tiny_dataset(data_root: DataRoot, tiny_msd: Path) -> None:
    result = _invoke("plan_and_preprocess", "-d", "Tiny_CT", "--root", str(data_root.root), "-c", "2d",
                     "3d_fullres", "--planner", "default", "-np", "1", "--no-progress")
    assert "3d_fullres: preprocessed 4 case(s)" in result.output
    for configuration in ("2d", "3d_fullres"):
        dataset = PreprocessedDataset(data_root.preprocessed_configuration("Tiny_CT", configuration))
        assert dataset.case_ids == ["case_000", "case_001", "case_002", "case_003"]
    again = _invoke("preprocess", "-d", "Tiny_CT", "--root", str(data_root.root), "-c", "3d_fullres",
                    "--no-progress")
    assert "preprocessed 0 case(s), 4 already done" in again.output


def test_plan_and_preprocess_with_overrides_and_alias(data_root: DataRoot, tiny_msd: Path) -> None:
    _invoke("plan-and-preprocess", "-d", str(tiny_msd), "--root", str(data_root.root), "-c", "3d_fullres",
            "--patch-size", "8", "16", "16", "-np", "1", "--no-progress")
    # no planner named: auto, and the forced patch holds for whatever the probe chose
    plans = json.loads(data_root.plans_file("Tiny_CT", "auto").read_text())
    assert plans["configurations"]["3d_fullres"]["patch_size"] == [8, 16, 16]
    assert data_root.preprocessed_configuration("Tiny_CT", "3d_fullres", "auto").is_dir()
    assert not data_root.preprocessed_configuration("Tiny_CT", "2d", "auto").exists()


def test_bad_override_fails_before_work(data_root: DataRoot, tiny_msd: Path) -> None:
    result = runner.invoke(app, ["plan_and_preprocess", "-d", "Tiny_CT", "--planner", "default",
                                 "--root", str(data_root.root), "--patch-size", "8", "x", "--no-progress"])
    assert result.exit_code != 0
    assert not data_root.plans_file("Tiny_CT").exists()


def test_verify_stops_with_the_problems(data_root: DataRoot, tiny_msd: Path) -> None:
    pytest.importorskip("autolung.dataset.verify")
    (tiny_msd / "labelsTr" / "case_001.nii.gz").unlink()
    result = runner.invoke(app, ["plan_and_preprocess", "-d", "Tiny_CT", "--root", str(data_root.root),
                                 "--verify", "--no-progress"])
    assert result.exit_code == 1
    assert "case_001" in result.output
    assert not data_root.plans_file("Tiny_CT").exists()


def test_demo_data_then_plan_and_preprocess(data_root: DataRoot) -> None:
    _invoke("demo_data", "--root", str(data_root.root), "--num-cases", "4", "--seed", "1", "--with-lung-label")
    folder = data_root.raw / "Demo_LungCT"
    assert len(list((folder / "imagesTr").glob("*.nii.gz"))) == 4
    _invoke("plan_and_preprocess", "-d", "Demo_LungCT", "--root", str(data_root.root), "-np", "2",
            "--planner", "default", "--no-progress")
    plans = json.loads(data_root.plans_file("Demo_LungCT").read_text())
    for configuration in plans["configurations"]:
        dataset = PreprocessedDataset(data_root.preprocessed_configuration("Demo_LungCT", configuration))
        data, seg, props = dataset.load("lung_000")
        assert set(np.unique(seg)) == {0, 1, 2}
        assert props["class_locations"]["1"]
    hidden = runner.invoke(app, ["demo-data", "--root", str(data_root.root)])  # hidden alias, refuses to overwrite
    assert isinstance(hidden.exception, InvalidInputError) and "not empty" in str(hidden.exception)


def test_hippocampus_subset(data_root: DataRoot) -> None:
    source = shared_dataset("Task04_Hippocampus")
    target = data_root.raw / "Task04_Hippocampus"
    payload = json.loads((source / "dataset.json").read_text())
    payload["training"] = payload["training"][:8]
    payload["numTraining"], payload["test"] = 8, []
    for sub in ("imagesTr", "labelsTr"):
        (target / sub).mkdir(parents=True)
    for entry in payload["training"]:
        for key in ("image", "label"):
            shutil.copy(source / entry[key], target / entry[key])
    (target / "dataset.json").write_text(json.dumps(payload))
    _invoke("plan_and_preprocess", "-d", "Task04_Hippocampus", "--root", str(data_root.root), "-np", "2",
            "--planner", "default", "--no-progress")
    dataset = PreprocessedDataset(data_root.preprocessed_configuration("Task04_Hippocampus", "3d_fullres"))
    assert len(dataset) == 8
    data, seg, props = dataset.load(dataset.case_ids[0])
    assert data.dtype == np.float32 and abs(float(data.mean())) < 1.0  # z-scored MRI
    assert set(np.unique(seg)) <= {0, 1, 2}
