"""Fingerprint values on small generated data with known answers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autolung.fingerprint import fingerprint_dataset
from autolung.fingerprint.case import case_statistics, nonzero_bbox
from autolung.paths import DataRoot

SPACING = (2.0, 1.0, 0.5)  # z, y, x: one voxel is 1 mm³


def _known_case() -> tuple[np.ndarray, np.ndarray]:
    """Image nonzero only in [2:8, 4:16, 4:16]; label 1: two cubes (8 and 27 voxels), label 2: 4 voxels."""
    label = np.zeros((10, 20, 20), dtype=np.uint8)
    label[3:5, 5:7, 5:7] = 1  # 8 voxels
    label[4:7, 10:13, 10:13] = 1  # 27 voxels
    label[6, 14, 4:8] = 2  # 4 voxels in a row
    image = np.zeros((1, 10, 20, 20), dtype=np.float32)
    image[0, 2:8, 4:16, 4:16] = 10.0
    image[0][label == 1] = 100.0
    image[0][label == 2] = 200.0
    return image, label


def test_case_statistics_known_values() -> None:
    image, label = _known_case()
    record, samples = case_statistics("c0", image, label, SPACING, [0, 1, 2], is_2d=False)
    assert record["shape"] == [10, 20, 20]
    assert record["shape_after_crop"] == [6, 12, 12]
    assert record["relative_size_after_crop"] == pytest.approx(6 * 12 * 12 / 4000)
    assert record["class_fractions"] == pytest.approx({"0": 3961 / 4000, "1": 35 / 4000, "2": 4 / 4000})
    assert record["components"]["1"] == {"count": 2, "sizes": [27.0, 8.0]}
    assert record["components"]["2"] == {"count": 1, "sizes": [4.0]}
    stats = record["foreground_intensity"][0]
    assert stats["mean"] == pytest.approx((35 * 100 + 4 * 200) / 39)
    assert stats["min"] == 100.0 and stats["max"] == 200.0 and stats["median"] == 100.0
    assert samples.shape == (1, 39)
    assert record["value_range"] == [{"min": 0.0, "max": 200.0, "integer": True}]


def test_sampling_is_capped_and_deterministic() -> None:
    image, label = _known_case()
    _, first = case_statistics("c0", image, label, SPACING, [0, 1, 2], is_2d=False, num_samples=5)
    _, again = case_statistics("c0", image, label, SPACING, [0, 1, 2], is_2d=False, num_samples=5)
    assert first.shape == (1, 5)
    np.testing.assert_array_equal(first, again)


def test_diagonal_voxels_form_one_component() -> None:
    label = np.zeros((3, 3, 3), dtype=np.uint8)
    label[0, 0, 0] = label[1, 1, 1] = 1
    image = np.ones((1, 3, 3, 3), dtype=np.float32)
    record, _ = case_statistics("c", image, label, (1.0, 1.0, 1.0), [0, 1], is_2d=False)
    assert record["components"]["1"]["count"] == 1


def test_empty_image_bbox_is_the_whole_image() -> None:
    assert nonzero_bbox(np.zeros((1, 2, 3, 4))) == [[0, 2], [0, 3], [0, 4]]


def _write_known_dataset(folder: Path, num_cases: int) -> Path:
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir(parents=True)
    image, label = _known_case()
    training = []
    for i in range(num_cases):
        for array, sub in ((image[0].astype(np.int16), "imagesTr"), (label, "labelsTr")):
            item = sitk.GetImageFromArray(array)
            item.SetSpacing(tuple(reversed(SPACING)))
            sitk.WriteImage(item, str(folder / sub / f"case_{i}.nii.gz"))
        training.append({"image": f"./imagesTr/case_{i}.nii.gz", "label": f"./labelsTr/case_{i}.nii.gz"})
    (folder / "dataset.json").write_text(json.dumps({
        "name": folder.name, "modality": {"0": "CT"}, "labels": {"0": "background", "1": "a", "2": "b"},
        "numTraining": num_cases, "training": training, "test": []}))
    return folder


@pytest.mark.parametrize("num_processes", [1, 2])
def test_fingerprint_dataset_writes_summary(data_root: DataRoot, num_processes: int) -> None:
    folder = _write_known_dataset(data_root.raw / "Known", num_cases=2)
    result = fingerprint_dataset(folder, data_root, num_processes=num_processes, progress=False)
    written = json.loads(data_root.fingerprint_file("Known").read_text())
    assert written == json.loads(json.dumps(result))
    assert result["dataset_name"] == "Known" and result["num_cases"] == 2 and result["is_2d"] is False
    assert result["channel_names"] == ["CT"]
    assert result["median_spacing"] == pytest.approx(list(SPACING))
    assert result["median_shape_after_crop"] == [6, 12, 12]
    assert result["class_fractions"]["2"] == pytest.approx(4 / 4000)
    lesions = result["lesion_sizes"]["1"]
    assert lesions["total_components"] == 4 and lesions["size_min"] == 8.0 and lesions["size_max"] == 27.0
    assert result["foreground_intensity"][0]["num_samples"] == 78
    assert [c["case_id"] for c in result["cases"]] == ["case_0", "case_1"]


def test_unreadable_case_names_the_file(data_root: DataRoot) -> None:
    from autolung.errors import AutolungError

    folder = _write_known_dataset(data_root.raw / "Broken", num_cases=2)
    (folder / "imagesTr" / "case_1.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(AutolungError, match="case_1"):
        fingerprint_dataset(folder, data_root, num_processes=1, progress=False)


def test_fingerprint_reports_one_step_per_case(data_root: DataRoot, recording_progress) -> None:
    folder = _write_known_dataset(data_root.raw / "Known", num_cases=2)
    recording = recording_progress
    fingerprint_dataset(folder, data_root, num_processes=1, progress=recording)
    assert recording.calls == [("start", "fingerprint", 2), ("advance", "fingerprint", 1),
                               ("advance", "fingerprint", 1), ("finish", "fingerprint")]
