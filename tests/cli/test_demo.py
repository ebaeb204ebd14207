"""The README's main job, shrunk: every step runs and writes what it promises."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk


def test_demo_runs_every_step_and_writes_masks_overlays_and_summary(tmp_path):
    root = tmp_path / "root"
    result = subprocess.run(
        [sys.executable, "-m", "autolung_cli", "demo", "--root", str(root), "--time-budget", "15s",
         "--num-cases", "5", "--num-unseen", "2", "--disable-tta", "-np", "1"],
        capture_output=True, text=True, encoding="utf-8", env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "unseen cases" in result.stdout and "tumour" in result.stdout
    summary = json.loads((root / "demo" / "evaluation" / "summary.json").read_text(encoding="utf-8"))
    assert summary["num_cases"] == 2 and 0.0 <= summary["mean_foreground_dice"] <= 1.0
    assert (root / "results" / "Demo_LungCT" / "3d_fullres__cpu" / "fold_0" / "checkpoint_final.pt").is_file()
    for case in ("lung_000", "lung_001"):
        image = sitk.ReadImage(str(root / "demo" / "unseen" / "imagesTr" / f"{case}.nii.gz"))
        mask = sitk.ReadImage(str(root / "demo" / "predictions" / f"{case}.nii.gz"))
        assert mask.GetSize() == image.GetSize()
        assert np.allclose(mask.GetSpacing(), image.GetSpacing()) and np.allclose(mask.GetOrigin(), image.GetOrigin())
        assert (root / "demo" / "overlays" / f"{case}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("native, budget", [(True, 300.0), (False, 600.0)])
def test_demo_budget_doubles_on_cpus_that_train_in_float32(monkeypatch, native, budget):
    from autolung import demo
    from autolung.training import hardware

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    assert demo.default_time_budget_s("cpu") == budget
    assert demo.DemoOptions().time_budget_s is None
