"""``autolung convert``: pairs folder <-> dataset, Decathlon <-> nnU-Net layout, 3D -> 2D slices."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_dataset, write_tiny_msd, run_cli_group

from autolung.convert import PairsOptions, convert_layout, convert_pairs, convert_slices, export_pairs, parse_labels
from autolung.dataset.layout import load_dataset, read_case
from autolung.errors import InvalidInputError
from autolung.io.images import read_image, read_label

FLIP = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def volume(seed: int, shape=(5, 12, 10), spacing_xyz=(0.8, 0.7, 2.5)) -> tuple[sitk.Image, sitk.Image]:
    """A small CT-like volume with a flipped direction and a two-label mask."""
    rng = np.random.default_rng(seed)
    image = rng.integers(-1000, 1000, size=shape).astype(np.int16)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[1:3, 2:6, 3:7] = 1
    mask[3, 8:10, 1:4] = 2
    items = [sitk.GetImageFromArray(image), sitk.GetImageFromArray(mask)]
    for item in items:
        item.SetSpacing(spacing_xyz)
        item.SetOrigin((10.0 + seed, -20.0, 33.5))
        item.SetDirection(FLIP)
    return items[0], items[1]


def pairs_folder(folder: Path, cases: int = 3, channels: int = 1, mask_ending: str = ".nii.gz") -> Path:
    """``<case>_img.nii.gz`` (``<case>_ch<k>.nii.gz`` for several channels) + ``masks/<case>_mask<ending>``."""
    (folder / "masks").mkdir(parents=True)
    for i in range(cases):
        case = f"pt{i:02d}"
        image, mask = volume(i)
        if channels == 1:
            sitk.WriteImage(image, str(folder / f"{case}_img.nii.gz"))
        for channel in range(channels if channels > 1 else 0):
            shifted = sitk.Cast(image, sitk.sitkInt16) + 100 * channel
            sitk.WriteImage(shifted, str(folder / f"{case}_ch{channel}.nii.gz"))
        sitk.WriteImage(mask, str(folder / "masks" / f"{case}_mask{mask_ending}"))
    return folder


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_image(a: Path, b: Path, label: bool = False) -> None:
    """Same voxels and the same geometry (spacing, origin, direction) in both files."""
    (array_a, geo_a), (array_b, geo_b) = (read_label(a), read_label(b)) if label else (read_image(a), read_image(b))
    np.testing.assert_array_equal(array_a, array_b)
    assert geo_a.shape == geo_b.shape
    np.testing.assert_allclose(geo_a.spacing, geo_b.spacing, atol=1e-5)
    np.testing.assert_allclose(geo_a.origin, geo_b.origin, atol=1e-4)
    np.testing.assert_allclose(geo_a.direction, geo_b.direction, atol=1e-5)


def leftover_staging(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".autolung-")]


SINGLE = PairsOptions(image_patterns=("{case}_img.nii.gz",), mask_pattern="masks/{case}_mask.nii.gz",
                      labels={"background": 0, "lung": 1, "tumour": 2})


def test_pairs_to_nnunet_copies_files_and_writes_dataset_json(tmp_path):
    source = pairs_folder(tmp_path / "pairs")
    before = tree_digest(source)
    out = convert_pairs(source, tmp_path / "Dataset_nn", SINGLE)
    payload = json.loads((out / "dataset.json").read_text())
    assert payload["channel_names"] == {"0": "CT"}
    assert payload["labels"] == {"background": 0, "lung": 1, "tumour": 2}
    assert payload["numTraining"] == 3 and payload["file_ending"] == ".nii.gz"
    spec = load_dataset(out)
    assert spec.layout == "nnunet" and spec.case_ids == ["pt00", "pt01", "pt02"]
    # Same ending: byte copies, so nothing about the images can change.
    assert (out / "imagesTr" / "pt01_0000.nii.gz").read_bytes() == (source / "pt01_img.nii.gz").read_bytes()
    _, label, geometry = read_case(spec, spec.case("pt02"))
    assert set(np.unique(label)) == {0, 1, 2}
    np.testing.assert_allclose(geometry.spacing, (2.5, 0.7, 0.8))
    assert tree_digest(source) == before
    assert leftover_staging(tmp_path) == []


def test_pairs_convert_other_mask_format_and_derive_labels(tmp_path):
    source = pairs_folder(tmp_path / "pairs", cases=2, mask_ending=".nrrd")
    options = PairsOptions(image_patterns=("{case}_img.nii.gz",), mask_pattern="masks/{case}_mask.nrrd",
                           layout="msd")
    out = convert_pairs(source, tmp_path / "Dataset_msd", options)
    payload = json.loads((out / "dataset.json").read_text())
    assert payload["labels"] == {"0": "background", "1": "label_1", "2": "label_2"}
    assert payload["modality"] == {"0": "CT"} and payload["numTraining"] == 2
    assert load_dataset(out).layout == "msd"
    assert_same_image(source / "masks" / "pt01_mask.nrrd", out / "labelsTr" / "pt01.nii.gz", label=True)


def test_multichannel_pairs_to_msd_4d_and_back_to_nnunet_channels(tmp_path):
    source = pairs_folder(tmp_path / "pairs", cases=2, channels=2)
    options = PairsOptions(image_patterns=("{case}_ch0.nii.gz", "{case}_ch1.nii.gz"),
                           mask_pattern="masks/{case}_mask.nii.gz", layout="msd", channel_names=("T1", "T2"))
    msd = convert_pairs(source, tmp_path / "Multi_msd", options)
    assert sitk.ReadImage(str(msd / "imagesTr" / "pt01.nii.gz")).GetDimension() == 4
    assert json.loads((msd / "dataset.json").read_text())["tensorImageSize"] == "4D"
    image, geometry = read_image(msd / "imagesTr" / "pt01.nii.gz")
    assert image.shape == (2, 5, 12, 10)
    np.testing.assert_allclose(geometry.direction, FLIP)

    nn = convert_layout(msd, tmp_path / "Multi_nn", "nnunet")
    assert json.loads((nn / "dataset.json").read_text())["channel_names"] == {"0": "T1", "1": "T2"}
    for channel in (0, 1):
        assert_same_image(source / f"pt01_ch{channel}.nii.gz", nn / "imagesTr" / f"pt01_000{channel}.nii.gz")
    assert_same_image(source / "masks" / "pt01_mask.nii.gz", nn / "labelsTr" / "pt01.nii.gz", label=True)

    back = convert_layout(nn, tmp_path / "Multi_msd_again", "msd")
    assert_same_image(msd / "imagesTr" / "pt00.nii.gz", back / "imagesTr" / "pt00.nii.gz")
    assert json.loads((back / "dataset.json").read_text())["labels"] == \
        json.loads((msd / "dataset.json").read_text())["labels"]


def test_missing_mask_is_refused_unless_allowed(tmp_path):
    source = pairs_folder(tmp_path / "pairs")
    (source / "masks" / "pt01_mask.nii.gz").unlink()
    with pytest.raises(InvalidInputError, match="pt01_mask.nii.gz: mask not found"):
        convert_pairs(source, tmp_path / "out", SINGLE)
    assert not (tmp_path / "out").exists()
    allowed = PairsOptions(**{**SINGLE.__dict__, "allow_unlabelled": True})
    out = convert_pairs(source, tmp_path / "out", allowed)
    assert (out / "imagesTs" / "pt01_0000.nii.gz").is_file()
    assert load_dataset(out).case_ids == ["pt00", "pt02"]


def test_undeclared_mask_values_and_shape_mismatch_are_refused(tmp_path):
    source = pairs_folder(tmp_path / "pairs", cases=1)
    with pytest.raises(InvalidInputError, match=r"values \[2\] not declared"):
        convert_pairs(source, tmp_path / "out", PairsOptions(**{**SINGLE.__dict__, "labels": {"lung": 1}}))
    small = sitk.Image(4, 4, 4, sitk.sitkUInt8)
    sitk.WriteImage(small, str(source / "masks" / "pt00_mask.nii.gz"))
    with pytest.raises(InvalidInputError, match="mask shape"):
        convert_pairs(source, tmp_path / "out", SINGLE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs"]


def test_output_folder_rules(tmp_path):
    source = pairs_folder(tmp_path / "pairs", cases=1)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not empty"):
        convert_pairs(source, occupied, SINGLE)
    assert (occupied / "keep.txt").read_text() == "mine"
    for bad in (source, source / "inside", tmp_path):
        with pytest.raises(InvalidInputError, match="input"):
            convert_pairs(source, bad, PairsOptions(**{**SINGLE.__dict__, "overwrite": True}))
    replaced = convert_pairs(source, occupied, PairsOptions(**{**SINGLE.__dict__, "overwrite": True}))
    assert not (replaced / "keep.txt").exists() and (replaced / "dataset.json").is_file()
    assert leftover_staging(tmp_path) == []


def test_failure_midway_leaves_no_output_and_no_staging(tmp_path):
    source = pairs_folder(tmp_path / "pairs", cases=2, mask_ending=".nrrd")
    (source / "masks" / "pt01_mask.nrrd").write_bytes(b"NRRD0004\ngarbage")
    options = PairsOptions(image_patterns=("{case}_img.nii.gz",), mask_pattern="masks/{case}_mask.nrrd")
    with pytest.raises(InvalidInputError, match="pt01_mask.nrrd"):
        convert_pairs(source, tmp_path / "out", options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs"]


def test_slices_keep_voxels_in_plane_spacing_and_position(tmp_path):
    dataset = write_tiny_msd(tmp_path / "Tiny", num_cases=2, shape=(6, 16, 12))
    out = convert_slices(dataset, tmp_path / "Tiny2D", axis=0)
    spec = load_dataset(out)
    assert spec.layout == "nnunet" and len(spec.cases) == 2 * 6 and spec.is_2d
    volume_image, volume_geometry = read_image(dataset / "imagesTr" / "case_001.nii.gz")
    volume_label, _ = read_label(dataset / "labelsTr" / "case_001.nii.gz")
    image, label, geometry = read_case(spec, spec.case("case_001_z0004"))
    np.testing.assert_array_equal(image[0, 0], volume_image[0, 4])
    np.testing.assert_array_equal(label[0], volume_label[4])
    assert geometry.is_2d and geometry.shape == (1, 16, 12)
    np.testing.assert_allclose(geometry.spacing[1:], volume_geometry.spacing[1:])
    # The slice's origin is where voxel (4, 0, 0) of the volume lies (identity direction here).
    np.testing.assert_allclose(geometry.origin, volume_geometry.origin[:2])
    assert json.loads((out / "dataset.json").read_text())["labels"] == {"background": 0, "bright": 1, "dark": 2}


def test_slices_only_labelled_and_other_axis(tmp_path):
    dataset = write_tiny_msd(tmp_path / "Tiny", num_cases=1, shape=(6, 16, 12))
    label, _ = read_label(dataset / "labelsTr" / "case_000.nii.gz")
    out = convert_slices(dataset, tmp_path / "Tiny2D", axis=1, only_labelled=True)
    spec = load_dataset(out)
    expected = [f"case_000_y{y:04d}" for y in range(label.shape[1]) if label[:, y].any()]
    assert spec.case_ids == expected
    image, seg, geometry = read_case(spec, spec.case(expected[0]))
    assert geometry.shape == (1, 6, 12)
    np.testing.assert_allclose(geometry.spacing[1:], (2.5, 0.7))
    np.testing.assert_array_equal(seg[0], label[:, int(expected[0][-4:])])
    with pytest.raises(InvalidInputError, match="already 2D"):
        convert_slices(out, tmp_path / "again")


def test_export_and_reimport_round_trip(tmp_path):
    dataset = write_tiny_msd(tmp_path / "Tiny", num_cases=2, shape=(4, 8, 8))
    pairs = export_pairs(dataset, tmp_path / "plain", "images/{case}.nrrd", "masks/{case}_seg.nii.gz")
    assert sorted(p.name for p in (pairs / "images").iterdir()) == ["case_000.nrrd", "case_001.nrrd"]
    assert json.loads((pairs / "labels.json").read_text())["labels"] == {"background": 0, "bright": 1, "dark": 2}
    assert_same_image(dataset / "imagesTr" / "case_001.nii.gz", pairs / "images" / "case_001.nrrd")
    options = PairsOptions(image_patterns=("images/{case}.nrrd",), mask_pattern="masks/{case}_seg.nii.gz",
                           labels=parse_labels(["bright=1 dark=2"]), layout="msd")
    again = convert_pairs(pairs, tmp_path / "Tiny_again", options)
    assert_same_image(dataset / "imagesTr" / "case_000.nii.gz", again / "imagesTr" / "case_000.nii.gz")
    assert_same_image(dataset / "labelsTr" / "case_000.nii.gz", again / "labelsTr" / "case_000.nii.gz", label=True)


def test_export_splits_channels_with_channel_placeholder(tmp_path):
    source = pairs_folder(tmp_path / "pairs", cases=1, channels=2)
    msd = convert_pairs(source, tmp_path / "msd", PairsOptions(
        image_patterns=("{case}_ch0.nii.gz", "{case}_ch1.nii.gz"), mask_pattern="masks/{case}_mask.nii.gz",
        layout="msd"))
    out = export_pairs(msd, tmp_path / "plain", "{case}_c{channel}.nii.gz", "{case}_m.nii.gz")
    assert_same_image(source / "pt00_ch1.nii.gz", out / "pt00_c1.nii.gz")


@pytest.mark.parametrize("image_pattern, mask_pattern", [
    ("{case}.nii.gz", "{case}_mask.nii.gz"),  # every mask also matches the image pattern
    ("{case}_img.nii.gz", "{case}.nii.gz"),  # every image also matches the mask pattern
])
def test_overlapping_patterns_pick_the_more_specific(tmp_path, image_pattern, mask_pattern):
    source = tmp_path / "flat"
    source.mkdir()
    for i in range(2):
        image, mask = volume(i)
        sitk.WriteImage(image, str(source / image_pattern.replace("{case}", f"c{i}")))
        sitk.WriteImage(mask, str(source / mask_pattern.replace("{case}", f"c{i}")))
    out = convert_pairs(source, tmp_path / "out", PairsOptions(image_patterns=(image_pattern,),
                                                               mask_pattern=mask_pattern))
    assert load_dataset(out).case_ids == ["c0", "c1"]
    assert_same_image(source / mask_pattern.replace("{case}", "c1"), out / "labelsTr" / "c1.nii.gz", label=True)


def test_bad_layout_ending_and_pattern_are_refused(tmp_path):
    source = pairs_folder(tmp_path / "pairs", cases=1)
    with pytest.raises(InvalidInputError, match="unknown layout"):
        convert_pairs(source, tmp_path / "out", PairsOptions(**{**SINGLE.__dict__, "layout": "zarr"}))
    with pytest.raises(InvalidInputError, match="not a supported image ending"):
        convert_pairs(source, tmp_path / "out", PairsOptions(**{**SINGLE.__dict__, "file_ending": "nii"}))
    with pytest.raises(InvalidInputError, match=r"\{case\} exactly once"):
        convert_pairs(source, tmp_path / "out", PairsOptions(**{**SINGLE.__dict__, "image_patterns": ("img.nii.gz",)}))
    with pytest.raises(InvalidInputError, match="no file matches"):
        convert_pairs(source, tmp_path / "out", PairsOptions(**{**SINGLE.__dict__, "image_patterns": ("{case}.png",)}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs"]


def test_parse_labels_forms_and_errors():
    assert parse_labels(["background=0 lung=1", "tumour=2"]) == {"background": 0, "lung": 1, "tumour": 2}
    assert parse_labels(["lung=1,tumour=2"]) == {"background": 0, "lung": 1, "tumour": 2}
    with pytest.raises(InvalidInputError, match="name=value"):
        parse_labels(["lung:1"])
    with pytest.raises(InvalidInputError, match="repeats"):
        parse_labels(["lung=1 airway=1"])


def _finding_lungs_subset(folder: Path, cases: int = 3) -> Path:
    """A 3-case copy of the real FindingLungs2D (PNG, nnU-Net layout); skipped when absent."""
    real = shared_dataset("FindingLungs2D")
    spec = load_dataset(real)
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for case in spec.cases[:cases]:
        shutil.copyfile(case.images[0], folder / "imagesTr" / case.images[0].name)
        shutil.copyfile(case.label, folder / "labelsTr" / case.label.name)
    payload = {**spec.metadata, "numTraining": cases}
    (folder / "dataset.json").write_text(json.dumps(payload))
    return folder


@pytest.mark.shared_data
def test_real_2d_png_dataset_round_trips_through_msd_and_pairs(tmp_path):
    dataset = _finding_lungs_subset(tmp_path / "Lungs")
    msd = convert_layout(dataset, tmp_path / "Lungs_msd", "msd")
    nn = convert_layout(msd, tmp_path / "Lungs_nn", "nnunet", file_ending=".png")
    plain = export_pairs(nn, tmp_path / "plain", "{case}.png", "{case}_mask.png")
    original = load_dataset(dataset)
    for case in original.cases:
        image, label, _ = read_case(original, case)
        for written in (nn / "imagesTr" / f"{case.case_id}_0000.png", plain / f"{case.case_id}.png"):
            np.testing.assert_array_equal(read_image(written)[0], image)
        np.testing.assert_array_equal(read_label(msd / "labelsTr" / f"{case.case_id}.nii.gz")[0][0], label[0])
        np.testing.assert_array_equal(read_label(plain / f"{case.case_id}_mask.png")[0], label)
    assert load_dataset(msd).labels == original.labels


@pytest.mark.shared_data
def test_real_msd_hippocampus_layout_round_trip_and_slices(tmp_path):
    real = shared_dataset("Task04_Hippocampus")
    payload = json.loads((real / "dataset.json").read_text())
    subset = tmp_path / "Hippo"
    for entry in payload["training"][:2]:
        for key in ("image", "label"):
            target = subset / entry[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(real / entry[key], target)
    (subset / "dataset.json").write_text(json.dumps({**payload, "training": payload["training"][:2],
                                                     "numTraining": 2}))
    nn = convert_layout(subset, tmp_path / "Hippo_nn", "nnunet")
    back = convert_layout(nn, tmp_path / "Hippo_msd", "msd")
    assert load_dataset(back).labels == load_dataset(subset).labels == {"background": 0, "Anterior": 1,
                                                                        "Posterior": 2}
    first = Path(payload["training"][0]["image"]).name
    assert (back / "imagesTr" / first).read_bytes() == (real / "imagesTr" / first).read_bytes()
    flat = convert_slices(back, tmp_path / "Hippo2D", only_labelled=True)
    volume_label, _ = read_label(real / "labelsTr" / first)
    case_id = first.removesuffix(".nii.gz")
    kept = [c for c in load_dataset(flat).case_ids if c.startswith(case_id)]
    assert len(kept) == int(volume_label.any(axis=(1, 2)).sum())


def test_cli_convert_pairs_then_layout_and_refusal(tmp_path, monkeypatch, capsys):
    source = pairs_folder(tmp_path / "pairs", cases=2)
    out = tmp_path / "root" / "raw" / "Lungs"
    args = ["convert", "pairs", "-i", str(source), "--image-pattern", "{case}_img.nii.gz",
            "--mask-pattern", "masks/{case}_mask.nii.gz", "-o", str(out), "--labels", "background=0", "lung=1", "tumour=2",
            "--channel-name", "CT", "--no-progress"]
    assert run_cli_group("data_tools", args, monkeypatch) == 0
    assert json.loads((out / "dataset.json").read_text())["labels"]["tumour"] == 2
    assert run_cli_group("data_tools", args, monkeypatch) == 1
    assert "not empty (set --overwrite to replace it)" in capsys.readouterr().err
    msd = tmp_path / "Lungs_msd"
    assert run_cli_group("data_tools", ["convert", "layout", "-i", "Lungs", "--root", str(tmp_path / "root"), "-o", str(msd),
                    "--to", "msd", "--no-progress"], monkeypatch) == 0
    assert load_dataset(msd).case_ids == ["pt00", "pt01"]
    assert run_cli_group("data_tools", ["convert", "slices", "-i", str(msd), "-o", str(msd / "sub"), "--no-progress"], monkeypatch) == 1
    assert "lies inside the input" in capsys.readouterr().err
