"""Files read and written through SimpleITK: NIfTI, NRRD, MHA/MHD and single DICOM files.

Converts between ``sitk.Image`` and autolung's ``(C, Z, Y, X)`` array plus ``ImageGeometry``.
Multi-channel data arrives either as a 4D image (Decathlon NIfTI: channels in the 4th dimension)
or as a vector image (one component per channel); both become the C axis.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autolung.errors import InvalidInputError
from autolung.io.geometry import SPACING_2D_SLICE, ImageGeometry
from autolung.io.nifti_check import check_nifti_complete

logger = logging.getLogger(__name__)

# SimpleITK pixel types (scalar and vector) to numpy dtype names, for header-only reads.
_PIXEL_DTYPES: dict[int, str] = {
    getattr(sitk, f"sitk{prefix}{name}"): dtype
    for name, dtype in (("UInt8", "uint8"), ("Int8", "int8"), ("UInt16", "uint16"), ("Int16", "int16"),
                        ("UInt32", "uint32"), ("Int32", "int32"), ("UInt64", "uint64"), ("Int64", "int64"),
                        ("Float32", "float32"), ("Float64", "float64"))
    for prefix in ("", "Vector")
}


def short_reason(exc: BaseException) -> str:
    """One readable line from a (often multi-line) SimpleITK/ITK error message.

    Args:
        exc: the exception raised by SimpleITK or an image library.

    Returns:
        The most informative line, at most 200 characters.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    flagged = [line for line in lines if "ERROR" in line or "Unable" in line or "Could not" in line]
    line = (flagged or lines)[-1]
    following = lines[lines.index(line) + 1:]
    # ITK prefixes "itk::ERROR: ImageFileReader(0x...): " which only adds noise.
    if "):" in line:
        line = line.split("):", 1)[1].strip() or line
    # "Error reading <file>:" is followed by the reader's own lines ("[nrrd] _func: reason"); the
    # last of them says what is wrong.
    if line.endswith(":") and following:
        detail = re.sub(r"^\[\w+\]\s*\w*:\s*", "", following[-1]).strip()
        if detail:
            line = f"{line} {detail}"
    return line[:200]


def read_itk_file(path: Path, file_format: str) -> tuple[np.ndarray, ImageGeometry]:
    """Read one image file with SimpleITK.

    Args:
        path: the file.
        file_format: its format key (kept in the geometry for writing back).

    Returns:
        The ``(C, Z, Y, X)`` array in the file's dtype and its geometry.

    Raises:
        InvalidInputError: when SimpleITK cannot read the file.
    """
    if file_format == "nifti":
        check_nifti_complete(path)  # ITK pads truncated NIfTI files with zeros instead of failing
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InvalidInputError(f"cannot read image: {short_reason(exc)}", path=path) from exc
    return image_to_array(image, file_format, path)


def read_itk_geometry(path: Path, file_format: str) -> ImageGeometry:
    """Read only the header of an image file (no voxel data).

    Args:
        path: the file.
        file_format: its format key.

    Returns:
        The geometry, with ``extra["num_channels"]`` and ``extra["dtype"]`` filled in.

    Raises:
        InvalidInputError: when SimpleITK cannot read the header.
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InvalidInputError(f"cannot read image: {short_reason(exc)}", path=path) from exc
    size = reader.GetSize()
    components = reader.GetNumberOfComponents()
    channels = components if len(size) < 4 else size[3] * components
    dtype = _PIXEL_DTYPES.get(reader.GetPixelID(), "unknown")
    return _geometry(size, reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection(), file_format,
                     {"dtype": dtype, "num_channels": int(channels)}, path)


def image_to_array(image: sitk.Image, file_format: str, path: Path | None = None) -> tuple[np.ndarray, ImageGeometry]:
    """Convert a SimpleITK image to a ``(C, Z, Y, X)`` array and its geometry.

    Args:
        image: a 2D, 3D or 4D (channels last in ITK order) image, scalar or vector.
        file_format: format key recorded in the geometry.
        path: the source, only for error messages.

    Returns:
        The channel-first array (file dtype) and the geometry of its spatial part.
    """
    array = sitk.GetArrayFromImage(image)
    components = image.GetNumberOfComponentsPerPixel()
    array = np.moveaxis(array, -1, 0) if components > 1 else array[None]
    dims = image.GetDimension()
    if dims == 4:
        if components > 1:
            raise InvalidInputError("cannot read image: 4D vector images are not supported", path=path)
        array = array[0]  # ITK's 4th axis is the first numpy axis: it becomes C.
    elif dims == 2:
        array = array[:, None]
    geometry = _geometry(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection(),
                         file_format, {"dtype": str(array.dtype), "num_channels": int(array.shape[0])}, path)
    return array, geometry


def _geometry(size: tuple[int, ...], spacing: tuple[float, ...], origin: tuple[float, ...],
              direction: tuple[float, ...], file_format: str, extra: dict, path: Path | None) -> ImageGeometry:
    """Spatial geometry in autolung's conventions from ITK-ordered header values."""
    dims = len(size)
    if dims not in (2, 3, 4):
        raise InvalidInputError(f"cannot read image: {dims}D images are not supported", path=path)
    if dims == 4:
        # Decathlon multi-modal files: keep the 3D part; the 4th axis holds channels.
        size, spacing, origin = size[:3], spacing[:3], origin[:3]
        direction = tuple(direction[row * 4 + col] for row in range(3) for col in range(3))
        extra = {**extra, "channel_axis": "4d"}
    shape = tuple(int(s) for s in reversed(size))
    zyx_spacing = tuple(float(s) for s in reversed(spacing))
    if dims == 2:
        shape = (1, *shape)
        zyx_spacing = (SPACING_2D_SLICE, *zyx_spacing)
    return ImageGeometry(shape=shape, spacing=zyx_spacing, origin=tuple(float(v) for v in origin),
                         direction=tuple(float(v) for v in direction), file_dims=2 if dims == 2 else 3,
                         file_format=file_format, extra=extra)


def array_to_image(array: np.ndarray, geometry: ImageGeometry) -> sitk.Image:
    """Build a SimpleITK image with exactly the given geometry.

    Args:
        array: ``(Z, Y, X)`` or ``(C, Z, Y, X)``; several channels become a vector image.
        geometry: the geometry to stamp on it (2D when ``geometry.file_dims == 2``).

    Returns:
        The image, ready for ``sitk.WriteImage``.
    """
    channels = array if array.ndim == 4 else array[None]
    if channels.shape[1:] != tuple(geometry.shape):
        raise ValueError(f"array spatial shape {channels.shape[1:]} differs from geometry {geometry.shape}")
    channels = writable_dtype(channels)
    spatial = channels[:, 0] if geometry.file_dims == 2 else channels
    if spatial.shape[0] == 1:
        image = sitk.GetImageFromArray(spatial[0])
    else:
        image = sitk.GetImageFromArray(np.moveaxis(spatial, 0, -1), isVector=True)
    spacing = geometry.spacing[1:] if geometry.file_dims == 2 else geometry.spacing
    image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    image.SetOrigin(tuple(float(v) for v in geometry.origin))
    image.SetDirection(tuple(float(v) for v in geometry.direction))
    return image


def writable_dtype(array: np.ndarray) -> np.ndarray:
    """Cast types the file formats handle poorly: bool -> uint8, 64-bit ints -> the smallest fitting int.

    Args:
        array: any numeric array.

    Returns:
        The array, cast only when needed.
    """
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:
        return array.astype(smallest_int_dtype(array))
    return array


def smallest_int_dtype(array: np.ndarray) -> np.dtype:
    """The smallest of uint8, int16, int32, int64 that holds all values of ``array``.

    Args:
        array: an array of integral values.

    Returns:
        The numpy dtype.
    """
    if array.size == 0:
        return np.dtype(np.uint8)
    low, high = float(np.min(array)), float(np.max(array))
    for candidate in (np.uint8, np.int16, np.int32):
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.int64)
