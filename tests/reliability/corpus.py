"""A corpus of broken input images, generated on the fly (no committed binaries).

Each entry writes one broken input (a file, or a DICOM folder) into a given folder and returns
its path, plus the words the one-line error must contain (besides the path).
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
from conftest import write_dicom_series


def _good_volume(shape=(8, 20, 20), dtype=np.int16, fill=None) -> sitk.Image:
    rng = np.random.default_rng(0)
    array = rng.normal(-500, 50, size=shape).astype(dtype) if fill is None else np.full(shape, fill, dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.7, 2.5))
    return image


def _write(image: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(image, str(path))
    return path


def truncated_nii_gz(folder: Path) -> Path:
    path = _write(_good_volume(), folder / "case_0000.nii.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_gzip(folder: Path) -> Path:
    path = folder / "case_0000.nii.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8)))
    return path


def truncated_nii(folder: Path) -> Path:
    path = _write(_good_volume(), folder / "case_0000.nii")
    data = path.read_bytes()
    path.write_bytes(data[: 352 + 100])   # the header and a sliver of the voxels
    return path


def zero_bytes(folder: Path) -> Path:
    path = folder / "case_0000.nii.gz"
    path.write_bytes(b"")
    return path


def truncated_nrrd(folder: Path) -> Path:
    path = _write(_good_volume(), folder / "case_0000.nrrd")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def garbage_nrrd_header(folder: Path) -> Path:
    path = folder / "case_0000.nrrd"
    path.write_text("NRRD0004\ntype: banana\ndimension: three\n\n")
    return path


def png_that_is_text(folder: Path) -> Path:
    path = folder / "case_0000.png"
    path.write_text("this is not a picture, it is a text file\n")
    return path


def text_as_nifti(folder: Path) -> Path:
    path = folder / "case_0000.nii.gz"
    path.write_bytes(gzip.compress(b"hello, I am text\n" * 10))
    return path


def nan_voxels(folder: Path) -> Path:
    array = np.full((8, 20, 20), -500.0, np.float32)
    array[2, 3, 4] = np.nan
    image = sitk.GetImageFromArray(array)
    return _write(image, folder / "case_0000.nii.gz")


def inf_voxels(folder: Path) -> Path:
    array = np.full((8, 20, 20), -500.0, np.float32)
    array[1, 1, 1] = np.inf
    return _write(sitk.GetImageFromArray(array), folder / "case_0000.nii.gz")


def four_d(folder: Path) -> Path:
    array = np.zeros((3, 8, 20, 20), np.int16)
    image = sitk.GetImageFromArray(array, isVector=False)
    return _write(image, folder / "case_0000.nii.gz")


def one_voxel_axis(folder: Path) -> Path:
    return _write(_good_volume(shape=(8, 20, 1)), folder / "case_0000.nii.gz")


def huge_declared_size(folder: Path) -> Path:
    """A valid NIfTI-1 header declaring 30000^3 int16 voxels, followed by a few bytes."""
    path = _write(_good_volume(shape=(2, 2, 2)), folder / "case_0000.nii")
    header = bytearray(path.read_bytes()[:352])
    struct.pack_into("<8h", header, 40, 3, 30000, 30000, 30000, 1, 1, 1, 1)
    path.write_bytes(bytes(header) + b"\x00" * 64)
    return path


def dicom_mixed_series(folder: Path) -> Path:
    series = folder / "case"
    write_dicom_series(series, "1.2.3.4.5", [0.0, 2.0, 4.0, 6.0], prefix="a")
    write_dicom_series(series, "1.2.3.4.6", [0.0, 2.0, 4.0, 6.0], prefix="b")
    return series


def dicom_missing_slice(folder: Path) -> Path:
    series = folder / "case"
    write_dicom_series(series, "1.2.3.4.5", [0.0, 2.0, 4.0, 8.0, 10.0])
    return series


# name -> (writer, words the error line must contain, case-insensitive; any one of them)
IMAGE_CORPUS: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "truncated_nii_gz": (truncated_nii_gz, ("truncated", "cannot read", "corrupt")),
    "corrupt_gzip": (corrupt_gzip, ("cannot read", "corrupt", "truncated")),
    "truncated_nii": (truncated_nii, ("truncated", "cannot read")),
    "zero_bytes": (zero_bytes, ("empty",)),
    "truncated_nrrd": (truncated_nrrd, ("truncated", "cannot read")),
    "garbage_nrrd_header": (garbage_nrrd_header, ("cannot read",)),
    "png_that_is_text": (png_that_is_text, ("cannot read",)),
    "text_as_nifti": (text_as_nifti, ("cannot read",)),
    "nan_voxels": (nan_voxels, ("nan",)),
    "inf_voxels": (inf_voxels, ("inf",)),
    "four_d": (four_d, ("channel",)),
    "one_voxel_axis": (one_voxel_axis, ("1 voxel", "one voxel", "too small", "degenerate")),
    "huge_declared_size": (huge_declared_size, ("truncated", "cannot read", "too large", "size")),
    "dicom_mixed_series": (dicom_mixed_series, ("series",)),
    "dicom_missing_slice": (dicom_missing_slice, ("missing", "spacing", "gap")),
}
