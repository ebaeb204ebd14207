"""DICOM series folders: detection, reading, and the checks SimpleITK only warns about.

ITK's series reader silently averages the slice spacing when slices are missing, and picks one
series when a folder holds several; both would give a wrongly scaled volume, so we refuse them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autolung.errors import InvalidInputError
from autolung.io.geometry import ImageGeometry
from autolung.io.itk import image_to_array, short_reason

logger = logging.getLogger(__name__)

# Slices whose gap differs from the typical gap by more than this fraction mean missing slices.
SLICE_GAP_TOLERANCE = 0.1
_POSITION_TAG = "0020|0032"
_ORIENTATION_TAG = "0020|0037"


def looks_like_dicom(path: Path) -> bool:
    """True for a ``.dcm`` file or a file with the ``DICM`` preamble marker.

    Args:
        path: a file.

    Returns:
        Whether the file looks like a DICOM part-10 file.
    """
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder directly holding DICOM files.

    Args:
        path: a file or folder.

    Returns:
        Whether the folder looks like a DICOM series folder.
    """
    folder = Path(path)
    if not folder.is_dir():
        return False
    return any(child.is_file() and not child.name.startswith(".") and looks_like_dicom(child)
               for child in folder.iterdir())


def read_dicom_series(folder: Path) -> tuple[np.ndarray, ImageGeometry]:
    """Read the single DICOM series in ``folder`` (rescale slope/intercept applied by ITK).

    Args:
        folder: a folder holding exactly one series.

    Returns:
        The ``(1, Z, Y, X)`` array and its geometry (``file_format="dicom"``).

    Raises:
        InvalidInputError: no series, several series, or uneven slice spacing.
    """
    files = series_files(folder)
    check_slice_positions(folder, files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InvalidInputError(f"cannot read image: {short_reason(exc)}", path=folder) from exc
    return image_to_array(image, "dicom", folder)


def series_files(folder: Path) -> list[str]:
    """The files of the one series in ``folder``, sorted by slice position.

    Args:
        folder: a DICOM series folder.

    Returns:
        File names as strings, in the order ITK's series reader wants.
    """
    try:
        series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError as exc:
        raise InvalidInputError(f"cannot read image: {short_reason(exc)}", path=folder) from exc
    if not series_ids:
        raise InvalidInputError("cannot read image: no readable DICOM series in this folder", path=folder)
    if len(series_ids) > 1:
        shown = ", ".join(series_ids[:3]) + (", ..." if len(series_ids) > 3 else "")
        raise InvalidInputError(f"folder mixes {len(series_ids)} DICOM series ({shown}); "
                                "put each series in its own folder", path=folder)
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0]))


def check_slice_positions(folder: Path, files: list[str]) -> None:
    """Refuse series with missing or duplicated slices (uneven spacing along the slice normal).

    Args:
        folder: the series folder, for messages.
        files: the series files in reader order.

    Raises:
        InvalidInputError: when the slice gaps are not all equal within tolerance.
    """
    positions = _slice_positions(files)
    if positions is None or len(positions) < 3:
        return
    gaps = np.diff(np.sort(positions))
    typical = float(np.median(gaps))
    if typical <= 1e-6 or np.any(gaps <= 1e-6):
        raise InvalidInputError("DICOM series has several slices at the same position", path=folder)
    uneven = np.abs(gaps - typical) > SLICE_GAP_TOLERANCE * typical
    if np.any(uneven):
        odd = sorted({round(float(g), 3) for g in gaps[uneven]})
        raise InvalidInputError(f"DICOM series has uneven slice spacing (typical gap {typical:.3f} mm, "
                                f"also gaps of {odd} mm): slices are missing", path=folder)


def _slice_positions(files: list[str]) -> np.ndarray | None:
    """Position of each slice along the slice normal, or None when the tags are absent."""
    positions = []
    for name in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise InvalidInputError(f"cannot read image: {short_reason(exc)}", path=name) from exc
        if not (reader.HasMetaDataKey(_POSITION_TAG) and reader.HasMetaDataKey(_ORIENTATION_TAG)):
            return None
        position = _floats(reader.GetMetaData(_POSITION_TAG))
        orientation = _floats(reader.GetMetaData(_ORIENTATION_TAG))
        if len(position) != 3 or len(orientation) != 6:
            return None
        normal = np.cross(orientation[:3], orientation[3:])
        positions.append(float(np.dot(normal, position)))
    return np.asarray(positions)


def _floats(value: str) -> np.ndarray:
    """Parse a DICOM multi-valued decimal string such as ``"1\\0\\0"``."""
    try:
        return np.asarray([float(v) for v in value.strip().split("\\") if v.strip()])
    except ValueError:
        return np.asarray([])
