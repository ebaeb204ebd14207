"""``autolung fingerprint`` and ``autolung plan`` through the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import autolung_cli.commands.planning  # noqa: F401 - registers the commands
from autolung.paths import DataRoot
from autolung_cli.app import app
from autolung_cli.commands.planning import join_multi_values
from conftest import shared_dataset

runner = CliRunner()


def test_join_multi_values() -> None:
    args = ["-d", "X", "--patch-size", "32", "64", "64", "--target-spacing", "2", "1", "1", "--explain"]
    assert join_multi_values(args) == ["-d", "X", "--patch-size", "32 64 64", "--target-spacing", "2 1 1",
                                       "--explain"]
    assert join_multi_values(["--patch-size", "64", "64", "-c", "2d"]) == ["--patch-size", "64 64", "-c", "2d"]


def test_plan_explain_on_tiny_dataset(tiny_msd: Path, data_root: DataRoot) -> None:
    result = runner.invoke(app, ["plan", "-d", str(tiny_msd), "--root", str(data_root.root), "--explain",
                                 "--planner", "default", "-np", "1"])
    assert result.exit_code == 0, result.output
    assert "[3d_fullres]" in result.output and "because" in result.output
    assert data_root.plans_file("Tiny_CT").is_file()


def test_plan_patch_size_override_exact_form(tiny_msd: Path, data_root: DataRoot) -> None:
    result = runner.invoke(app, ["plan", "-d", str(tiny_msd), "--root", str(data_root.root), "-np", "1",
                                 "--planner", "default", "--patch-size", "8", "30", "30", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    plans = json.loads(data_root.plans_file("Tiny_CT").read_text())
    full = plans["configurations"]["3d_fullres"]
    assert full["overrides"] == {"patch_size": [8, 30, 30], "batch_size": 3}
    assert full["batch_size"] == 3 and full["patch_size"][1] % 2 == 0 and full["patch_size"][1] >= 30


def test_real_hippocampus_plan(tmp_path: Path) -> None:
    folder = shared_dataset("Task04_Hippocampus")
    root = tmp_path / "root"
    result = runner.invoke(app, ["fingerprint", "-d", str(folder), "--root", str(root), "-np", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["plan", "-d", str(folder), "--root", str(root), "--explain", "--planner", "default"])
    assert result.exit_code == 0, result.output
    plans = json.loads(DataRoot(root).plans_file("Task04_Hippocampus").read_text())
    full = plans["configurations"]["3d_fullres"]
    assert full["spacing"] == pytest.approx([1.0, 1.0, 1.0])
    assert full["patch_size"] == [40, 56, 40]  # as nnU-Net v2 plans it
    assert 2 <= full["batch_size"] <= 12
    assert full["normalization"][0]["scheme"] == "zscore"
    assert "3d_lowres" not in plans["configurations"]
    assert plans["configurations"]["2d"]["patch_size"] == [56, 40]
