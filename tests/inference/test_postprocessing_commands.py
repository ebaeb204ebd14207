"""determine_postprocessing, apply_postprocessing and ensemble --pp through the CLI."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from autolung.inference.cv_outputs import save_cv_probabilities

from cli_main import run_main

from .test_model_choice import GEOMETRY, MAPPING, _probabilities, _reference


def _write(path, array):
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((1.0, 1.0, 2.0))
    image.SetOrigin((5.0, -3.0, 7.0))
    sitk.WriteImage(image, str(path))


def _read(path):
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image.GetSpacing(), image.GetOrigin()


def _noisy(ref):
    noisy = ref.copy()
    noisy[0, 14:16, 0:2] = 1  # a spurious blob of label 1
    return noisy


def test_determine_and_apply_postprocessing_on_any_folder(tmp_path, capsys, monkeypatch):
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    for seed in range(3):
        _write(ref_dir / f"c{seed}.nii.gz", _reference(seed))
        _write(pred_dir / f"c{seed}.nii.gz", _noisy(_reference(seed)))
    code, output = run_main(["determine_postprocessing", "-p", pred_dir, "-r", ref_dir], capsys, monkeypatch)
    assert code == 0, output
    rules_file = pred_dir / "postprocessing.json"
    result = json.loads(rules_file.read_text())
    assert result["rules"] == [{"label": 1, "method": "largest_component"}] and result["num_cases"] == 3
    assert result["dice_after"]["1"] > result["dice_before"]["1"] and result["dice_after"]["1"] == 1.0

    out = tmp_path / "cleaned"
    code, output = run_main(["apply_postprocessing", "-i", pred_dir, "-o", out, "--pp", rules_file],
                            capsys, monkeypatch)
    assert code == 0, output
    for seed in range(3):
        cleaned, spacing, origin = _read(out / f"c{seed}.nii.gz")
        assert np.array_equal(cleaned, _reference(seed))
        assert spacing == (1.0, 1.0, 2.0) and origin == (5.0, -3.0, 7.0)
    assert np.array_equal(_read(pred_dir / "c0.nii.gz")[0], _noisy(_reference(0)))  # input untouched

    code, output = run_main(["apply_postprocessing", "-i", pred_dir, "-o", pred_dir, "--pp", rules_file],
                            capsys, monkeypatch)
    assert code == 1 and "the output folder is the input folder" in output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rules": [{"label": 1, "method": "shrink"}]}))
    code, output = run_main(["apply_postprocessing", "-i", pred_dir, "-o", tmp_path / "x", "--pp", bad],
                            capsys, monkeypatch)
    assert code == 1 and f"error: {bad}: rule 0 must hold 'label' and a 'method'" in output


def test_ensemble_applies_postprocessing(tmp_path, capsys, monkeypatch):
    for name in ("a", "b"):
        for seed in range(2):
            save_cv_probabilities(tmp_path / name, f"c{seed}", _probabilities(_noisy(_reference(seed)), 0.9),
                                  GEOMETRY, MAPPING)
    rules = tmp_path / "inference_choice.json"  # the rules may come from a stored choice too
    rules.write_text(json.dumps({"postprocessing": {"rules": [{"label": 1, "method": "largest_component"}]}}))
    code, output = run_main(["ensemble", "-i", tmp_path / "a", tmp_path / "b", "-o", tmp_path / "plain"],
                            capsys, monkeypatch)
    assert code == 0, output
    code, output = run_main(["ensemble", "-i", tmp_path / "a", tmp_path / "b", "-o", tmp_path / "pp", "--pp", rules],
                            capsys, monkeypatch)
    assert code == 0, output
    for seed in range(2):
        plain = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "plain" / f"c{seed}.nii.gz")))
        cleaned = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "pp" / f"c{seed}.nii.gz")))
        assert np.array_equal(plain, _noisy(_reference(seed))) and np.array_equal(cleaned, _reference(seed))
    record = json.loads((tmp_path / "pp" / "autolung_predictions.json").read_text())
    assert record["options"]["postprocessing"]["rules"][0]["method"] == "largest_component"
