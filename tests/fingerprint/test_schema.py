"""The typed fingerprint: existing fingerprint.json files read unchanged and write back identically."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from autolung.errors import InvalidInputError
from autolung.fingerprint import Fingerprint, fingerprint_dataset, load_fingerprint
from autolung.fingerprint.schema import ValueRange
from autolung.labels import RegionMapping
from autolung.paths import DataRoot
from autolung.planning.run import fingerprint_digest
from test_fingerprint import _write_known_dataset

# A fingerprint.json as autolung wrote it before the schema existed (MSDLungTumourPatches2D, two of
# its cases kept), keys in the written order.
WRITTEN = {
    "fingerprint_version": 1, "autolung_version": "0.1.0", "plans_digest": None,
    "dataset_name": "MSDLungTumourPatches2D", "channel_names": ["CT"], "labels": {"background": 0, "tumour": 1},
    "region_mapping": {"regions": [[1]], "paint_labels": [1]}, "file_ending": ".png", "is_2d": True,
    "num_cases": 2, "component_connectivity": "full", "component_size_unit": "mm2", "file_formats": ["png"],
    "median_spacing": [999.0, 1.0, 1.0], "median_shape": [1.0, 48.0, 48.0], "median_shape_after_crop": [1.0, 48.0, 48.0],
    "median_relative_size_after_crop": 1.0,
    "foreground_intensity": [{"mean": 183.05783498703852, "std": 75.64004868058879, "median": 226.0, "min": 0.0,
                              "max": 255.0, "percentile_00_5": 0.0, "percentile_99_5": 255.0, "num_samples": 11187}],
    "value_range": [{"min": 0.0, "max": 255.0, "integer": True}],
    "class_fractions": {"0": 0.9533128004807693, "1": 0.04668719951923077},
    "lesion_sizes": {"1": {"total_components": 2, "median_components_per_case": 1.0, "cases_with_class": 2,
                           "size_min": 41.0, "size_max": 719.0}},
    "cases": [
        {"case_id": "patch_001", "spacing": [999.0, 1.0, 1.0], "shape": [1, 48, 48], "shape_after_crop": [1, 48, 48],
         "relative_size_after_crop": 1.0,
         "foreground_intensity": [{"mean": 198.2, "std": 62.5, "median": 223.0, "min": 35.0, "max": 255.0,
                                   "percentile_00_5": 35.2, "percentile_99_5": 255.0}],
         "value_range": [{"min": 0.0, "max": 255.0, "integer": True}],
         "class_fractions": {"0": 0.98, "1": 0.02}, "components": {"1": {"count": 1, "sizes": [41.0]}},
         "is_2d": True, "file_format": "png"},
        {"case_id": "patch_002", "spacing": [999.0, 1, 1], "shape": [1, 48, 40], "shape_after_crop": [1, 46, 40],
         "relative_size_after_crop": 0.958, "foreground_intensity": [None], "value_range": [],
         "class_fractions": {"0": 1.0, "1": 0.0}, "components": {"1": {"count": 0, "sizes": []}},
         "is_2d": True, "file_format": "png"},
    ],
}


def test_written_fingerprint_reads_typed_and_writes_back_identically(tmp_path: Path) -> None:
    path = tmp_path / "fingerprint.json"
    path.write_text(json.dumps(WRITTEN, indent=2))
    fingerprint = load_fingerprint(path)
    assert isinstance(fingerprint, Fingerprint)
    assert fingerprint.dataset_name == "MSDLungTumourPatches2D" and fingerprint.is_2d is True
    assert fingerprint.channel_names == ("CT",) and fingerprint.num_cases == 2
    assert fingerprint.region_mapping == RegionMapping(((1,),), (1,))
    assert fingerprint.spacings == [(999.0, 1.0, 1.0), (999.0, 1, 1)]
    assert fingerprint.shapes_after_crop == [(1, 48, 48), (1, 46, 40)]
    assert fingerprint.cases[1].relative_size_after_crop == 0.958
    assert fingerprint.cases[0].extra["file_format"] == "png"
    stats = fingerprint.intensity(0)
    assert (stats.mean, stats.std, stats.percentile_99_5, stats.num_samples) == (183.05783498703852,
                                                                                 75.64004868058879, 255.0, 11187)
    assert fingerprint.channel_value_range(0).is_eight_bit
    assert fingerprint.extra == {"autolung_version": "0.1.0", "plans_digest": None}
    # Same content, same key order (a human diff stays empty), same digest as the raw payload.
    assert fingerprint.to_json() == WRITTEN and list(fingerprint.to_json()) == list(WRITTEN)
    assert list(fingerprint.to_json()["cases"][1]) == list(WRITTEN["cases"][1])
    assert json.dumps(fingerprint.to_json()) == json.dumps(WRITTEN)  # ints stay ints, None stays null
    assert fingerprint_digest(fingerprint) == fingerprint_digest(WRITTEN)


def test_fingerprint_dataset_writes_what_the_schema_reads(data_root: DataRoot) -> None:
    folder = _write_known_dataset(data_root.raw / "Known", num_cases=2)
    result = fingerprint_dataset(folder, data_root, num_processes=1, progress=False)
    fingerprint = Fingerprint.load(data_root.fingerprint_file("Known"))
    assert fingerprint.to_json() == json.loads(data_root.fingerprint_file("Known").read_text()) == result
    assert [c.case_id for c in fingerprint.cases] == ["case_0", "case_1"] and fingerprint.is_2d is False
    assert fingerprint.intensity(0).num_samples == 78


def test_optional_fields_have_the_rules_defaults() -> None:
    payload = {k: v for k, v in WRITTEN.items()
               if k not in ("foreground_intensity", "value_range", "file_formats", "is_2d", "file_ending",
                            "median_relative_size_after_crop")}
    fingerprint = Fingerprint.from_json(payload)
    assert fingerprint.is_2d is None and fingerprint.file_ending is None
    assert fingerprint.intensity(0) is None and fingerprint.intensity(3) is None
    assert fingerprint.channel_value_range(2) == ValueRange() and not ValueRange().is_eight_bit
    assert fingerprint.to_json() == payload


def _broken(change) -> dict:
    payload = copy.deepcopy(WRITTEN)
    change(payload)
    return payload


@pytest.mark.parametrize("payload, problem", [
    ([], "not a version-1 autolung fingerprint"),
    (_broken(lambda p: p.update(fingerprint_version=2)), "not a version-1 autolung fingerprint"),
    (_broken(lambda p: p.pop("cases")), "not a valid fingerprint"),
    (_broken(lambda p: p.update(cases=[])), "fingerprint has no cases"),
    (_broken(lambda p: p["cases"][0].pop("spacing")), "case 'patch_001' incomplete"),
    (_broken(lambda p: p["cases"][0].update(spacing=["1", 1, 1])), r"`cases\[patch_001\].spacing` must be a list"),
    (_broken(lambda p: p["cases"][1].update(shape_after_crop=[46, 40])), "must have 3 values"),
    (_broken(lambda p: p.update(channel_names="CT")), "`channel_names` must be a list of names"),
    (_broken(lambda p: p.update(num_cases="2")), "`num_cases` must be a whole number"),
    (_broken(lambda p: p["foreground_intensity"][0].update(std="wide")), "intensity `std` must be a number"),
    (_broken(lambda p: p["foreground_intensity"][0].pop("mean")), "statistics incomplete"),
    (_broken(lambda p: p.pop("region_mapping")), "not a valid fingerprint"),
])
def test_invalid_fingerprints_are_refused_naming_the_file(tmp_path: Path, payload: object, problem: str) -> None:
    path = tmp_path / "fingerprint.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(InvalidInputError, match=problem) as caught:
        Fingerprint.load(path)
    assert caught.value.path == path


def test_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="fingerprint not found"):
        Fingerprint.load(tmp_path / "fingerprint.json")
    (tmp_path / "fingerprint.json").write_text("{")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        Fingerprint.load(tmp_path / "fingerprint.json")


def test_coerce_keeps_a_fingerprint_and_reads_a_payload() -> None:
    fingerprint = Fingerprint.from_json(WRITTEN)
    assert Fingerprint.coerce(fingerprint) is fingerprint and Fingerprint.coerce(WRITTEN) == fingerprint
