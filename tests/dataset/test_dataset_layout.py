"""Dataset layouts: Decathlon and nnU-Net v2 raw, region labels, dataset.json errors, read_case."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import skimage.io

from autolung.dataset.layout import load_dataset, read_case
from autolung.errors import InvalidInputError
from autolung.labels import RegionMapping
from conftest import shared_dataset, write_tiny_msd


def write_tiny_nnunet(folder: Path, num_cases: int = 2, channels: int = 2, labels: dict | None = None,
                      extra: dict | None = None) -> Path:
    """A tiny nnU-Net v2 raw dataset of 2D PNG cases with ``channels`` channel files each."""
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(num_cases):
        for c in range(channels):
            pixels = rng.integers(0, 256, (12, 10)).astype(np.uint8)
            skimage.io.imsave(str(folder / "imagesTr" / f"case{i}_{c:04d}.png"), pixels, check_contrast=False)
        label = np.zeros((12, 10), np.uint8)
        label[2:6, 3:7] = 1
        skimage.io.imsave(str(folder / "labelsTr" / f"case{i}.png"), label, check_contrast=False)
    payload = {"channel_names": {str(c): f"ch{c}" for c in range(channels)},
               "labels": labels or {"background": 0, "lung": 1}, "numTraining": num_cases, "file_ending": ".png",
               **(extra or {})}
    (folder / "dataset.json").write_text(json.dumps(payload))
    return folder


def test_msd_layout_is_detected_and_read(tmp_path: Path) -> None:
    folder = write_tiny_msd(tmp_path / "Tiny", num_cases=2, shape=(4, 8, 8))
    spec = load_dataset(folder)
    assert (spec.name, spec.layout, spec.channel_names, spec.file_ending) == ("Tiny", "msd", ["CT"], ".nii.gz")
    assert spec.labels == {"background": 0, "bright": 1, "dark": 2}
    assert spec.region_mapping == RegionMapping.one_per_label([1, 2])
    assert [c.case_id for c in spec.cases] == ["case_000", "case_001"]
    assert spec.cases[0].images == [(folder / "imagesTr" / "case_000.nii.gz").resolve()]
    assert spec.is_2d is False
    image, label, geometry = read_case(spec, spec.cases[1])
    assert image.shape == (1, 4, 8, 8) and image.dtype == np.float32
    assert label.shape == (4, 8, 8) and set(np.unique(label)) <= {0, 1, 2}
    assert geometry.spacing == pytest.approx((2.5, 0.7, 0.7))


def test_nnunet_layout_stacks_channel_files(tmp_path: Path) -> None:
    spec = load_dataset(write_tiny_nnunet(tmp_path / "Two", channels=2))
    assert spec.layout == "nnunet" and spec.channel_names == ["ch0", "ch1"] and spec.file_ending == ".png"
    assert spec.labels == {"background": 0, "lung": 1}
    assert [p.name for p in spec.cases[0].images] == ["case0_0000.png", "case0_0001.png"]
    assert spec.cases[0].label.name == "case0.png"
    assert spec.is_2d is True
    image, label, geometry = read_case(spec, spec.cases[0])
    assert image.shape == (2, 1, 12, 10) and label.shape == (1, 12, 10)
    assert int(label.sum()) == 16 and geometry.is_2d


def test_nnunet_region_labels_build_nested_regions(tmp_path: Path) -> None:
    folder = write_tiny_nnunet(tmp_path / "Regions", channels=1,
                               labels={"background": 0, "lung": [1, 2], "tumour": 2},
                               extra={"regions_class_order": [1, 2]})
    spec = load_dataset(folder)
    assert spec.region_mapping == RegionMapping(regions=((1, 2), (2,)), paint_labels=(1, 2))
    assert spec.labels == {"background": 0, "lung": 1, "tumour": 2}
    assert spec.declared_label_values == {0, 1, 2}


def test_multimodal_4d_decathlon_case(tmp_path: Path) -> None:
    folder = write_tiny_msd(tmp_path / "Multi", num_cases=1, shape=(4, 8, 8))
    volumes = [sitk.GetImageFromArray(np.full((4, 8, 8), v, np.float32)) for v in (1.0, 2.0)]
    sitk.WriteImage(sitk.JoinSeries(volumes), str(folder / "imagesTr" / "case_000.nii.gz"))
    payload = json.loads((folder / "dataset.json").read_text())
    payload["modality"] = {"0": "T1", "1": "T2"}
    (folder / "dataset.json").write_text(json.dumps(payload))
    label = sitk.GetImageFromArray(np.zeros((4, 8, 8), np.uint8))
    sitk.WriteImage(label, str(folder / "labelsTr" / "case_000.nii.gz"))
    spec = load_dataset(folder)
    image, _, geometry = read_case(spec, spec.cases[0])
    assert image.shape == (2, 4, 8, 8) and float(image[1].mean()) == 2.0 and geometry.shape == (4, 8, 8)


def test_label_geometry_float_noise_is_accepted_but_real_shift_is_not(tmp_path: Path) -> None:
    folder = write_tiny_msd(tmp_path / "Noise", num_cases=1, shape=(4, 8, 8))
    label_path = folder / "labelsTr" / "case_000.nii.gz"
    label = sitk.ReadImage(str(label_path))
    origin = label.GetOrigin()
    label.SetOrigin((origin[0] + 1e-6, origin[1], origin[2]))
    sitk.WriteImage(label, str(label_path))
    spec = load_dataset(folder)
    read_case(spec, spec.cases[0])
    label.SetOrigin((origin[0] + 5.0, origin[1], origin[2]))
    sitk.WriteImage(label, str(label_path))
    with pytest.raises(InvalidInputError, match="origin") as info:
        read_case(spec, spec.cases[0])
    assert info.value.path == label_path.resolve()


@pytest.mark.parametrize("edit, message", [
    (lambda p: "{not json", "invalid JSON"),
    (lambda p: json.dumps({k: v for k, v in p.items() if k != "labels"}), "missing key 'labels'"),
    (lambda p: json.dumps({**p, "training": {"a": 1}}), "'training' must be a list"),
    (lambda p: json.dumps({**p, "modality": {"0": 5}}), "'modality' must map"),
    (lambda p: json.dumps({"name": "x"}), "neither nnU-Net"),
    (lambda p: json.dumps({**p, "training": [{"image": "../outside.nii.gz", "label": "./labelsTr/a.nii.gz"}]}),
     "escapes the folder"),
    (lambda p: json.dumps({**p, "training": [{"image": "/etc/passwd", "label": "./labelsTr/a.nii.gz"}]}),
     "escapes the folder"),
])
def test_bad_dataset_json_names_the_file_and_problem(tmp_path: Path, edit, message: str) -> None:
    folder = write_tiny_msd(tmp_path / "Bad", num_cases=1, shape=(2, 4, 4))
    payload = json.loads((folder / "dataset.json").read_text())
    (folder / "dataset.json").write_text(edit(payload))
    with pytest.raises(InvalidInputError, match=message) as info:
        load_dataset(folder)
    assert info.value.path == (folder / "dataset.json").resolve()


def test_nnunet_regions_without_class_order_are_refused(tmp_path: Path) -> None:
    folder = write_tiny_nnunet(tmp_path / "NoOrder", channels=1, labels={"background": 0, "lung": [1, 2], "tumour": 2})
    with pytest.raises(InvalidInputError, match="regions_class_order"):
        load_dataset(folder)


def test_real_finding_lungs_2d_dataset_json() -> None:
    spec = load_dataset(shared_dataset("FindingLungs2D"))
    assert spec.layout == "nnunet" and spec.channel_names == ["CT"] and spec.file_ending == ".png"
    assert spec.labels == {"background": 0, "lung": 1} and len(spec.cases) == 213 and spec.is_2d
    image, label, geometry = read_case(spec, spec.cases[0])
    assert image.shape == (1, 1, 64, 64) and label.shape == (1, 64, 64) and geometry.is_2d


def test_real_hippocampus_dataset_json() -> None:
    spec = load_dataset(shared_dataset("Task04_Hippocampus"))
    assert spec.layout == "msd" and spec.channel_names == ["MRI"] and len(spec.cases) == 203
    assert spec.labels == {"background": 0, "Anterior": 1, "Posterior": 2} and not spec.is_2d
    image, label, _ = read_case(spec, spec.cases[0])
    assert image.shape[0] == 1 and image.shape[1:] == label.shape
