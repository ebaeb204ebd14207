"""Postprocessing choice, saved-probability ensembling, and find_best_configuration."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from autolung.errors import InvalidInputError
from autolung.inference.best_configuration import find_best_configuration
from autolung.inference.cv_outputs import load_cv_probabilities, save_cv_probabilities
from autolung.inference.ensembling import ensemble_folders
from autolung.inference.postprocessing import apply_postprocessing, choose_postprocessing, keep_largest_component
from autolung.io.geometry import ImageGeometry
from autolung.labels import RegionMapping

MAPPING = RegionMapping.one_per_label([1, 2])
SHAPE = (6, 16, 16)
GEOMETRY = ImageGeometry(shape=SHAPE, spacing=(2.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                         direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))


def _reference(seed: int) -> np.ndarray:
    seg = np.zeros(SHAPE, dtype=np.uint8)
    seg[1:5, 2:8, 2:8] = 1          # one organ
    seg[2:4, 10 + seed % 2:14, 10:14] = 2   # one lesion
    return seg


def test_largest_component_kept_when_it_helps():
    pairs = []
    for seed in range(3):
        ref = _reference(seed)
        pred = ref.copy()
        pred[0, 14:16, 0:2] = 1     # spurious blob of label 1
        pairs.append((ref, pred))
    choice = choose_postprocessing(pairs, [1, 2])
    assert [r["label"] for r in choice["rules"]] == [1]
    assert choice["dice_after"]["1"] > choice["dice_before"]["1"]
    cleaned = apply_postprocessing(pairs[0][1], choice)
    np.testing.assert_array_equal(cleaned, pairs[0][0])


def test_no_rule_when_components_are_real():
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[1:3, 1:4, 1:4] = 1
    ref[1:3, 10:13, 10:13] = 1      # two true components: dropping one would hurt
    assert choose_postprocessing([(ref, ref.copy())], [1])["rules"] == []
    assert keep_largest_component(ref == 1).sum() == 18


def _cv_folder(folder, cases: dict[str, np.ndarray]):
    for case_id, probabilities in cases.items():
        save_cv_probabilities(folder, case_id, probabilities, GEOMETRY, MAPPING)
    return folder


def _probabilities(seg: np.ndarray, confidence: float) -> np.ndarray:
    return np.stack([(seg == 1) * confidence, (seg == 2) * confidence]).astype(np.float32)


def test_cv_probabilities_round_trip(tmp_path):
    probabilities = _probabilities(_reference(0), 0.9)
    path = save_cv_probabilities(tmp_path, "c0", probabilities, GEOMETRY, MAPPING)
    loaded = load_cv_probabilities(path)
    assert loaded.case_id == "c0" and loaded.geometry == GEOMETRY and loaded.region_mapping == MAPPING
    np.testing.assert_allclose(loaded.probabilities, probabilities, atol=1e-3)
    with pytest.raises(ValueError):
        save_cv_probabilities(tmp_path, "bad", probabilities[:, :2], GEOMETRY, MAPPING)


def test_ensemble_averages_probabilities(tmp_path):
    ref = _reference(0)
    a = _cv_folder(tmp_path / "a", {"c0": _probabilities(ref, 0.9)})
    b = _cv_folder(tmp_path / "b", {"c0": _probabilities(ref, 0.3)})   # mean 0.6: still foreground
    c = _cv_folder(tmp_path / "c", {"c0": _probabilities(ref, 0.05)})  # mean with a: 0.475: background
    [mask] = ensemble_folders([a, b], tmp_path / "ab")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(mask))), ref)
    [mask] = ensemble_folders([a, c], tmp_path / "ac")
    assert not sitk.GetArrayFromImage(sitk.ReadImage(str(mask))).any()
    _cv_folder(tmp_path / "d", {"other": _probabilities(ref, 0.9)})
    with pytest.raises(InvalidInputError, match="different cases"):
        ensemble_folders([a, tmp_path / "d"], tmp_path / "ad")


def test_find_best_configuration_picks_better_and_postprocessing(data_root):
    labels_folder = data_root.raw / "Tiny" / "labelsTr"
    labels_folder.mkdir(parents=True)
    good, bad = {}, {}
    for seed in range(4):
        ref = _reference(seed)
        image = sitk.GetImageFromArray(ref)
        image.SetSpacing((1.0, 1.0, 2.0))
        sitk.WriteImage(image, str(labels_folder / f"c{seed}.nii.gz"))
        noisy = ref.copy()
        noisy[0, 14:16, 0:2] = 1
        good[f"c{seed}"] = _probabilities(noisy, 0.9)
        worse = ref.copy()
        worse[worse == 2] = 0
        bad[f"c{seed}"] = _probabilities(worse, 0.9)
    results = data_root.results_dataset("Tiny")
    for name, cases in (("3d_fullres__default", good), ("2d__default", bad)):
        for fold, ids in enumerate((["c0", "c1"], ["c2", "c3"])):
            _cv_folder(results / name / f"fold_{fold}" / "validation", {i: cases[i] for i in ids})
    choice = find_best_configuration(data_root, "Tiny")
    assert [entry["folder"] for entry in choice["configurations"]] == ["3d_fullres__default"]
    assert set(choice["candidates"]) == {"2d__default", "3d_fullres__default", "2d__default+3d_fullres__default"}
    assert choice["postprocessing"]["rules"][0]["method"] in ("largest_component", "min_size")
    assert choice["mean_foreground_dice_postprocessed"] == pytest.approx(1.0)
    saved = json.loads((results / "inference_choice.json").read_text())
    assert saved["configurations"][0]["configuration"] == "3d_fullres"


def _cross_validation(data_root, folds=((0, ["c0", "c1"]), (1, ["c2", "c3"]))):
    labels_folder = data_root.raw / "Tiny" / "labelsTr"
    labels_folder.mkdir(parents=True, exist_ok=True)
    cases = {}
    for seed in range(4):
        ref = _reference(seed)
        image = sitk.GetImageFromArray(ref)
        image.SetSpacing((1.0, 1.0, 2.0))
        sitk.WriteImage(image, str(labels_folder / f"c{seed}.nii.gz"))
        cases[f"c{seed}"] = _probabilities(ref, 0.9)
    results = data_root.results_dataset("Tiny") / "3d_fullres__default"
    for fold, ids in folds:
        _cv_folder(results / f"fold_{fold}" / "validation", {i: cases[i] for i in ids})
    return results


def test_cli_find_best_configuration_leaves_fold_all_out(data_root, capsys, monkeypatch):
    from cli_main import run_main

    results = _cross_validation(data_root)
    empty = np.zeros((2, *SHAPE), dtype=np.float32)
    # fold all "validated" its own training cases (here: all wrong); they must not count
    _cv_folder(results / "fold_all" / "validation", {f"c{i}": empty for i in range(4)})
    code, output = run_main(["find_best_configuration", "-d", "Tiny", "--root", data_root.root], capsys, monkeypatch)
    assert code == 0, output
    choice = json.loads((data_root.results_dataset("Tiny") / "inference_choice.json").read_text())
    assert choice["mean_foreground_dice"] == pytest.approx(1.0) and choice["num_cases"] == 4
    assert choice["cross_validation"] == "complete"


def test_cli_find_best_configuration_refuses_incomplete_cv_unless_partial_allowed(data_root, capsys, monkeypatch):
    from cli_main import run_main

    _cross_validation(data_root, folds=((0, ["c0", "c1"]),))
    data_root.splits_file("Tiny").parent.mkdir(parents=True, exist_ok=True)
    data_root.splits_file("Tiny").write_text(json.dumps([{"train": ["c2", "c3"], "val": ["c0", "c1"]},
                                                         {"train": ["c0", "c1"], "val": ["c2", "c3"]}]))
    args = ["find_best_configuration", "-d", "Tiny", "--root", data_root.root]
    code, output = run_main(args, capsys, monkeypatch)
    assert code == 1
    assert "incomplete cross-validation: 3d_fullres__default: folds [1] missing" in output
    assert "2 labelled case(s) not predicted (c2, c3)" in output
    assert not (data_root.results_dataset("Tiny") / "inference_choice.json").exists()

    code, output = run_main([*args, "--allow-partial"], capsys, monkeypatch)
    assert code == 0, output
    assert "PARTIAL cross-validation (2 cases)" in output
    choice = json.loads((data_root.results_dataset("Tiny") / "inference_choice.json").read_text())
    assert choice["cross_validation"] == "partial" and choice["num_cases"] == 2
    assert choice["partial"] == {"missing_folds": {"3d_fullres__default": [1]},
                                 "unpredicted_cases": {"3d_fullres__default": ["c2", "c3"]}}


def test_cli_find_best_configuration_refuses_a_case_predicted_by_two_folds(data_root, capsys, monkeypatch):
    from cli_main import run_main

    _cross_validation(data_root, folds=((0, ["c0", "c1"]), (1, ["c1", "c2", "c3"])))
    code, output = run_main(["find_best_configuration", "-d", "Tiny", "--root", data_root.root, "--allow-partial"],
                            capsys, monkeypatch)
    assert code == 1
    assert "case 'c1' was validated by both fold_0 and fold_1" in output
