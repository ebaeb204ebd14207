"""DICOM series folders (real and generated) and grouping a folder's images into cases."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from autolung.errors import InvalidInputError
from autolung.io.images import image_files_in, is_dicom_folder, read_image, read_label, write_image
from conftest import shared_dataset, write_dicom_series


def test_real_dicom_series_equals_nifti_slices_43_to_66() -> None:
    series = shared_dataset("dicom") / "LUNG1-002_ct_24slices"
    volume = shared_dataset("NSCLC_LungCT") / "imagesTr" / "lung1_002.nii.gz"
    assert is_dicom_folder(series)
    dicom, geometry = read_image(series)
    nifti, nifti_geometry = read_image(volume)
    assert dicom.shape == (1, 24, 512, 512) and geometry.file_format == "dicom"
    np.testing.assert_array_equal(dicom[0], nifti[0, 43:67])
    np.testing.assert_allclose(geometry.spacing, nifti_geometry.spacing, rtol=1e-4)
    np.testing.assert_allclose(geometry.direction, nifti_geometry.direction, atol=1e-6)


def test_generated_series_reads_and_mask_is_written_as_nifti(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "ct", "1.2.3.4.5", [0.0, 2.0, 4.0, 6.0])
    array, geometry = read_image(tmp_path / "ct")
    assert array.shape == (1, 4, 8, 8)
    np.testing.assert_array_equal(array[0, :, 0, 0], [0, 10, 20, 30])
    assert geometry.spacing == pytest.approx((2.0, 0.5, 0.5))
    written = write_image(np.ones((4, 8, 8), np.uint8), geometry, tmp_path / "out" / "ct")
    assert written.name == "ct.nii.gz"
    mask, mask_geometry = read_label(written)
    assert mask.shape == (4, 8, 8) and mask_geometry.spacing == pytest.approx(geometry.spacing)


def test_folder_with_two_series_is_refused(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "mixed", "1.2.3.4.5", [0.0, 2.0, 4.0], prefix="a")
    write_dicom_series(tmp_path / "mixed", "1.2.3.4.6", [0.0, 2.0, 4.0], prefix="b")
    with pytest.raises(InvalidInputError, match="mixes 2 DICOM series") as info:
        read_image(tmp_path / "mixed")
    assert info.value.path == tmp_path / "mixed"


def test_series_with_a_missing_slice_is_refused(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "gap", "1.2.3.4.5", [0.0, 2.0, 4.0, 8.0, 10.0])
    with pytest.raises(InvalidInputError, match="uneven slice spacing"):
        read_image(tmp_path / "gap")


def test_folder_without_dicom_is_not_a_series(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert not is_dicom_folder(tmp_path)
    with pytest.raises(InvalidInputError, match="no DICOM"):
        read_image(tmp_path)


def test_image_files_in_groups_channels_plain_files_and_series(tmp_path: Path) -> None:
    for name in ("a_0000.nii.gz", "a_0001.nii.gz", "b.nrrd", "c_0000.png", ".hidden.nii.gz", "readme.txt"):
        (tmp_path / name).write_bytes(b"x")
    write_dicom_series(tmp_path / "patient7", "1.2.3.4.5", [0.0, 1.0, 2.0])
    cases = image_files_in(tmp_path)
    assert list(cases) == ["a", "b", "c", "patient7"]
    assert [p.name for p in cases["a"]] == ["a_0000.nii.gz", "a_0001.nii.gz"]
    assert cases["b"] == [tmp_path / "b.nrrd"]
    assert cases["patient7"] == [tmp_path / "patient7"]
    assert image_files_in(tmp_path / "patient7") == {"patient7": [tmp_path / "patient7"]}


def test_image_files_in_refuses_gaps_in_channel_numbers(tmp_path: Path) -> None:
    for name in ("a_0000.nii.gz", "a_0002.nii.gz"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="expected \\[0, 1\\]"):
        image_files_in(tmp_path)


def test_real_series_folder_copy_with_missing_slice_is_refused(tmp_path: Path) -> None:
    series = shared_dataset("dicom") / "LUNG1-002_ct_24slices"
    target = tmp_path / "series"
    target.mkdir()
    for index, path in enumerate(sorted(series.iterdir())[:6]):
        if index != 3:
            shutil.copy(path, target / path.name)
    with pytest.raises(InvalidInputError, match="uneven slice spacing") as info:
        read_image(target)
    assert info.value.path == target
