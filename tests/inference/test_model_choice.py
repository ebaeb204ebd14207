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
