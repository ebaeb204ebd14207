"""File endings and the format keys stored in ``ImageGeometry.file_format``.

One place decides which endings autolung reads, which library reads them, and which ending a
format key writes back to (DICOM input is written as NIfTI).
"""
from __future__ import annotations

from pathlib import Path

from autolung.errors import InvalidInputError

# Longest endings first, so ".nii.gz" wins over ".gz".
_ENDING_TO_FORMAT: dict[str, str] = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "mha",
    ".mhd": "mhd",
    ".dcm": "dicom",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
}

# Formats read and written through scikit-image: always 2D, spacing 1.
RASTER_FORMATS = frozenset({"png", "jpeg", "tiff", "bmp"})

# Formats whose header points at a separate data file (need care when writing atomically).
DETACHED_HEADER_ENDINGS = frozenset({".mhd", ".nhdr"})

# The ending each format key is written back to.
_FORMAT_TO_WRITE_ENDING: dict[str, str] = {
    "nifti": ".nii.gz",
    "nrrd": ".nrrd",
    "mha": ".mha",
    "mhd": ".mhd",
    "dicom": ".nii.gz",
    "png": ".png",
    "jpeg": ".png",
    "tiff": ".tif",
    "bmp": ".png",
}

IMAGE_ENDINGS: tuple[str, ...] = tuple(sorted(_ENDING_TO_FORMAT, key=len, reverse=True))
RASTER_ENDINGS: tuple[str, ...] = tuple(e for e, f in _ENDING_TO_FORMAT.items() if f in RASTER_FORMATS)


def image_ending(path: str | Path) -> str | None:
    """The known image ending of ``path`` (lower case, e.g. ``".nii.gz"``), or None.

    Args:
        path: a file name or path.

    Returns:
        The matching ending from :data:`IMAGE_ENDINGS`, or None when the ending is unknown.
    """
    name = Path(path).name.lower()
    for ending in IMAGE_ENDINGS:
        if name.endswith(ending) and len(name) > len(ending):
            return ending
    return None


def format_of(path: str | Path) -> str:
    """The format key of an image file, from its ending.

    Args:
        path: the image file.

    Returns:
        A key such as ``"nifti"`` or ``"png"``.

    Raises:
        InvalidInputError: when the ending is not a supported image format.
    """
    ending = image_ending(path)
    if ending is None:
        supported = ", ".join(IMAGE_ENDINGS)
        raise InvalidInputError(f"unsupported image file ending (supported: {supported}, or a DICOM folder)",
                                path=path)
    return _ENDING_TO_FORMAT[ending]


def strip_ending(path: str | Path) -> str:
    """The file name without its image ending (``case_001.nii.gz`` -> ``case_001``).

    Args:
        path: a file name or path.

    Returns:
        The name without the ending; the whole name when the ending is unknown.
    """
    name = Path(path).name
    ending = image_ending(name)
    return name[: -len(ending)] if ending else name


def write_ending_for(file_format: str) -> str:
    """The ending a mask is written to for input of ``file_format`` (DICOM -> ``.nii.gz``).

    Args:
        file_format: a format key from ``ImageGeometry.file_format``.

    Returns:
        An ending such as ``".nii.gz"``; ``".nii.gz"`` for unknown keys.
    """
    return _FORMAT_TO_WRITE_ENDING.get(file_format, ".nii.gz")


def is_raster_ending(ending: str) -> bool:
    """True for endings read through scikit-image (2D only)."""
    return _ENDING_TO_FORMAT.get(ending.lower()) in RASTER_FORMATS
