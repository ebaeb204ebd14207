"""Reading and writing images and label maps in every supported format.

Public entry points for the rest of autolung. Arrays are ``(C, Z, Y, X)`` (labels ``(Z, Y, X)``),
2D images have ``Z == 1``; the returned :class:`ImageGeometry` is enough for :func:`write_image`
to write a mask back with the input's format, size, spacing, origin and direction.

- 3D (and 2D) NIfTI, NRRD, MHA/MHD, single DICOM files: SimpleITK (:mod:`autolung.io.itk`);
- DICOM series folders: :mod:`autolung.io.dicom`;
- PNG, JPEG, TIFF, BMP: scikit-image (:mod:`autolung.io.raster`).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autolung.errors import InvalidInputError, WriteFailedError
from autolung.io.dicom import is_dicom_folder, read_dicom_series
from autolung.io.formats import (
    DETACHED_HEADER_ENDINGS,
    RASTER_FORMATS,
    format_of,
    image_ending,
    strip_ending,
    write_ending_for,
)
from autolung.io.geometry import ImageGeometry
from autolung.io.itk import array_to_image, read_itk_file, read_itk_geometry, short_reason, smallest_int_dtype
from autolung.io.raster import read_raster, write_raster
from autolung.utils.atomic import atomic_path, is_partial_file

logger = logging.getLogger(__name__)

__all__ = [
    "image_files_in", "is_dicom_folder", "read_geometry", "read_image", "read_label", "refuse_nonfinite", "write_image",
]

_CHANNEL_SUFFIX = re.compile(r"(?P<case>.+)_(?P<channel>\d{4})")


def read_image(path: str | Path, expected_channels: int | None = None) -> tuple[np.ndarray, ImageGeometry]:
    """Read an image file or DICOM series folder.

    Args:
        path: an image file or a folder holding one DICOM series.
        expected_channels: channels the dataset declares for this file; only used to decide how
            colour raster images become channels (1: luminance, 3: RGB).

    Returns:
        The ``(C, Z, Y, X)`` array in the file's dtype and its geometry.

    Raises:
        InvalidInputError: missing, empty, corrupt or unsupported file (the message names it).
    """
    path = Path(path)
    if path.is_dir():
        if is_dicom_folder(path):
            return read_dicom_series(path)
        raise InvalidInputError("cannot read image: folder holds no DICOM files", path=path)
    file_format = _check_file(path)
    if file_format in RASTER_FORMATS:
        return read_raster(path, file_format, expected_channels)
    return read_itk_file(path, file_format)


def read_geometry(path: str | Path) -> ImageGeometry:
    """The geometry of an image without reading its voxels where the format allows.

    Args:
        path: an image file or DICOM series folder.

    Returns:
        Its geometry, with ``extra["num_channels"]`` and ``extra["dtype"]``.
    """
    path = Path(path)
    if path.is_dir() or format_of(path) in RASTER_FORMATS:
        return read_image(path)[1]
    return read_itk_geometry(path, _check_file(path))


def read_label(path: str | Path) -> tuple[np.ndarray, ImageGeometry]:
    """Read a label map as integers.

    A label stored as float with integral values is converted (with a warning); grey labels
    stored as RGB with identical channels are accepted.

    Args:
        path: the label file (any supported format).

    Returns:
        The ``(Z, Y, X)`` integer array and its geometry.

    Raises:
        InvalidInputError: unreadable file, several channels, or non-integer values.
    """
    array, geometry = read_image(path)
    if array.shape[0] != 1:
        raise InvalidInputError(f"label image has {array.shape[0]} channels; a label map needs exactly one",
                                path=path)
    return as_integer_labels(array[0], Path(path)), geometry


def as_integer_labels(values: np.ndarray, path: Path) -> np.ndarray:
    """Integer label map from ``values``; float with integral values is converted.

    Args:
        values: the label voxels.
        path: the source, for messages.

    Returns:
        The integer array (the input itself when already integer).

    Raises:
        InvalidInputError: when values are not finite integers.
    """
    if values.dtype == np.bool_:
        return values.astype(np.uint8)
    if values.dtype.kind in "iu":
        return values
    finite = np.isfinite(values)
    if not np.all(finite) or not np.all(np.mod(values, 1) == 0):
        bad = values[~finite] if not np.all(finite) else values[np.mod(values, 1) != 0]
        raise InvalidInputError(f"label holds non-integer values (e.g. {float(bad.flat[0]):g}); "
                                "labels must be whole numbers", path=path)
    logger.warning("%s: label stored as %s with whole-number values; converted to integers", path, values.dtype)
    return values.astype(smallest_int_dtype(values))


def write_image(array: np.ndarray, geometry: ImageGeometry, path: str | Path,
                metadata: dict[str, str] | None = None) -> Path:
    """Write an image or mask atomically with exactly ``geometry``.

    The format follows the ending of ``path``; a path without a known ending gets the ending
    of ``geometry.file_format`` (DICOM input is written as ``.nii.gz``).

    Args:
        array: ``(Z, Y, X)`` or ``(C, Z, Y, X)`` matching ``geometry.shape``.
        geometry: from :func:`read_image` of the input.
        path: the file to write (never the input itself).
        metadata: header fields (``autolung.provenance.image_metadata``): ``note`` goes to
            NIfTI's ``descrip`` and NRRD/MHA's file notes; every field goes to NRRD/MHA key-value
            fields and PNG text chunks. Other raster formats keep none.

    Returns:
        The path written.
    """
    path = Path(path)
    ending = image_ending(path)
    if ending is None:
        ending = write_ending_for(geometry.file_format)
        path = path.with_name(path.name + ending)
    file_format = format_of(path)
    if file_format == "dicom":
        raise InvalidInputError("writing DICOM is not supported; write .nii.gz instead", path=path)
    if file_format in RASTER_FORMATS:
        with atomic_path(path) as tmp:
            write_raster(np.asarray(array), geometry, tmp, metadata)
        return path
    image = array_to_image(np.asarray(array), geometry)
    for key, value in (metadata or {}).items():
        image.SetMetaData("ITK_FileNotes" if key == "note" else key, value)
    if ending in DETACHED_HEADER_ENDINGS:
        _write_detached(image, path)
    else:
        try:
            with atomic_path(path) as tmp:
                sitk.WriteImage(image, str(tmp), useCompression=True)
        except RuntimeError as exc:  # ITK reports a failed write (a full disk) as RuntimeError
            raise WriteFailedError(f"cannot write image: {short_reason(exc)}", path=path) from exc
    return path


def _write_detached(image: sitk.Image, path: Path) -> None:
    """Write a header + data file pair (MHD/NHDR) so the header appears last and complete.

    The header names its data file, so both are written under their final names in a private
    temporary folder and moved into place data first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=path.parent))
    try:
        sitk.WriteImage(image, str(staging / path.name), useCompression=False)
        for produced in sorted(staging.iterdir(), key=lambda p: p.name == path.name):
            os.replace(produced, path.parent / produced.name)
    except RuntimeError as exc:
        raise InvalidInputError(f"cannot write image: {short_reason(exc)}", path=path) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_file(path: Path) -> str:
    """Format key of an existing, non-empty image file; a clear error otherwise."""
    if not path.exists():
        raise InvalidInputError("file not found", path=path)
    file_format = format_of(path)
    if path.stat().st_size == 0:
        raise InvalidInputError("cannot read image: file is empty (0 bytes)", path=path)
    return file_format


def image_files_in(folder: str | Path) -> dict[str, list[Path]]:
    """Group the images in ``folder`` into cases.

    ``<case>_0000<ending>``, ``<case>_0001<ending>``... are the channels of one case (nnU-Net
    naming); any other image file is a single-channel case named by its file name; sub-folders
    holding a DICOM series are cases named by the folder. A folder that is itself a DICOM series
    is one case.

    Args:
        folder: the input folder.

    Returns:
        Case id -> channel files (or DICOM folders) in channel order, sorted by case id.

    Raises:
        InvalidInputError: missing folder, gaps in channel numbers, or two files claiming one case.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError("input folder not found", path=folder)
    if is_dicom_folder(folder):
        return {folder.name: [folder]}
    plain: dict[str, Path] = {}
    channelled: dict[str, dict[int, Path]] = {}
    for entry in sorted(folder.iterdir()):
        _sort_entry(entry, plain, channelled, folder)
    cases = {case: [path] for case, path in plain.items()}
    for case, channels in channelled.items():
        _add_channelled_case(case, channels, cases, folder)
    return dict(sorted(cases.items()))


def _sort_entry(entry: Path, plain: dict[str, Path], channelled: dict[str, dict[int, Path]], folder: Path) -> None:
    """File one folder entry as a plain case or as a channel of a case."""
    if entry.name.startswith(".") or is_partial_file(entry):
        return
    if entry.is_dir():
        if is_dicom_folder(entry):
            plain[entry.name] = entry
        return
    if image_ending(entry) is None:
        return
    stem = strip_ending(entry)
    match = _CHANNEL_SUFFIX.fullmatch(stem)
    if match is None:
        if stem in plain:
            raise InvalidInputError(f"two images for case {stem!r}: {plain[stem].name} and {entry.name}", path=folder)
        plain[stem] = entry
        return
    slots = channelled.setdefault(match["case"], {})
    channel = int(match["channel"])
    if channel in slots:
        raise InvalidInputError(f"two files for channel {channel} of case {match['case']!r}: "
                                f"{slots[channel].name} and {entry.name}", path=folder)
    slots[channel] = entry


def _add_channelled_case(case: str, channels: dict[int, Path], cases: dict[str, list[Path]], folder: Path) -> None:
    """Add one ``_NNNN`` group; without a ``_0000`` file its files are plain cases instead."""
    if 0 not in channels:
        for path in channels.values():
            cases[strip_ending(path)] = [path]
        return
    expected = list(range(len(channels)))
    if sorted(channels) != expected:
        raise InvalidInputError(f"case {case!r} has channel files {sorted(channels)}; expected {expected}",
                                path=folder)
    if case in cases:
        raise InvalidInputError(f"case {case!r} appears both as {cases[case][0].name} and as channel files",
                                path=folder)
    cases[case] = [channels[c] for c in expected]


def refuse_nonfinite(path: str | Path, array: np.ndarray, geometry: ImageGeometry) -> None:
    """Raise when an image holds NaN/Inf voxels, including those ITK's NIfTI reader hides as zeros.

    Args:
        path: the file the array was read from (named in the error).
        array: the array ``read_image`` returned.
        geometry: its geometry (``file_format`` decides whether the stored values are checked).

    Raises:
        InvalidInputError: NaN or Inf voxels found.
    """
    from autolung.io.nifti_check import count_nonfinite_voxels

    bad = int(array.size - np.count_nonzero(np.isfinite(array))) if array.dtype.kind == "f" else 0
    if not bad and geometry.file_format == "nifti" and Path(path).is_file():
        bad = count_nonfinite_voxels(Path(path))
    if bad:
        raise InvalidInputError(f"image holds {bad} NaN/Inf voxel(s); replace them before using the image",
                                path=path)
