"""2D raster images (PNG, JPEG, TIFF, BMP) through scikit-image.

These files carry no physical geometry: spacing is 1 in-plane and the slice spacing is
``SPACING_2D_SLICE``. Colour is handled so that grey images stored as RGB stay one channel.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import skimage.io

from autolung.errors import InvalidInputError
from autolung.io.geometry import SPACING_2D_SLICE, ImageGeometry
from autolung.io.itk import short_reason

logger = logging.getLogger(__name__)

# ITU-R BT.601 luma weights: the usual choice for converting colour photos/scans to grey.
_LUMA_WEIGHTS = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)


def read_raster(path: Path, file_format: str, expected_channels: int | None = None) -> tuple[np.ndarray, ImageGeometry]:
    """Read a 2D raster image.

    Args:
        path: the file.
        file_format: its format key (``"png"``, ``"jpeg"``, ``"tiff"``, ``"bmp"``).
        expected_channels: channels the dataset declares; 1 turns true colour into luminance,
            3 keeps RGB even when the channels are identical. None: grey stays 1, colour gives 3.

    Returns:
        The ``(C, 1, Y, X)`` array and its geometry (``file_dims == 2``).

    Raises:
        InvalidInputError: unreadable file or an unsupported layout (e.g. multi-page TIFF).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.asarray(skimage.io.imread(str(path)))
    except Exception as exc:  # the imaging plugins raise many unrelated types for bad files
        raise InvalidInputError(f"cannot read image: {short_reason(exc)}", path=path) from exc
    channels, colour = _channels_first(data, expected_channels, path)
    geometry = ImageGeometry(
        shape=(1, int(channels.shape[1]), int(channels.shape[2])), spacing=(SPACING_2D_SLICE, 1.0, 1.0),
        origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0), file_dims=2, file_format=file_format,
        extra={"dtype": str(data.dtype), "colour": colour, "num_channels": int(channels.shape[0])})
    return channels[:, None], geometry


def _channels_first(data: np.ndarray, expected_channels: int | None, path: Path) -> tuple[np.ndarray, str]:
    """``(C, Y, X)`` from a grey ``(Y, X)`` or colour ``(Y, X, 2|3|4)`` array, plus a colour tag."""
    if data.ndim == 2 and min(data.shape) > 0:
        return data[None], "grey"
    if data.ndim != 3 or data.shape[-1] not in (2, 3, 4) or min(data.shape) == 0:
        raise InvalidInputError(f"cannot read image: unsupported raster layout {data.shape} "
                                "(expected a 2D grey or RGB image)", path=path)
    if data.shape[-1] == 2:  # grey + alpha: the alpha channel carries no intensity
        return data[None, ..., 0], "grey"
    rgb = data[..., :3]
    if expected_channels == 3:
        return np.moveaxis(rgb, -1, 0), "rgb"
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[None, ..., 0], "rgb-grey"
    if expected_channels == 1:
        logger.debug("%s: true colour image reduced to luminance (dataset declares one channel)", path)
        return (rgb.astype(np.float32) @ _LUMA_WEIGHTS)[None], "rgb-luminance"
    return np.moveaxis(rgb, -1, 0), "rgb"


def write_raster(array: np.ndarray, geometry: ImageGeometry, target: Path,
                 metadata: dict[str, str] | None = None) -> None:
    """Write ``(Z, Y, X)`` or ``(C, Z, Y, X)`` with Z == 1 as a 2D raster file.

    Masks and other integral data become uint8 (uint16 when needed and the format allows it).

    Args:
        array: the data; one channel (grey) or three (RGB).
        geometry: the geometry it belongs to (its shape must match).
        target: the file to write (the caller makes this atomic).
        metadata: text fields, kept in PNG text chunks (other raster formats drop them).
    """
    channels = array if array.ndim == 4 else array[None]
    if channels.shape[1] != 1:
        raise InvalidInputError(f"cannot write a 3D array of shape {channels.shape[1:]} as a 2D image", path=target)
    if channels.shape[1:] != tuple(geometry.shape):
        raise ValueError(f"array spatial shape {channels.shape[1:]} differs from geometry {geometry.shape}")
    if channels.shape[0] not in (1, 3):
        raise InvalidInputError(f"cannot write {channels.shape[0]} channels to a 2D image (1 or 3 only)", path=target)
    planar = channels[:, 0]
    pixels = planar[0] if planar.shape[0] == 1 else np.moveaxis(planar, 0, -1)
    pixels = _raster_dtype(pixels, target)
    if target.suffix.lower() in (".jpg", ".jpeg"):
        logger.warning("%s: JPEG is lossy; masks should be written as PNG", target)
    if metadata and target.suffix.lower() == ".png":
        _write_png_with_text(pixels, target, metadata)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skimage.io.imsave(str(target), pixels, check_contrast=False)


def _write_png_with_text(pixels: np.ndarray, target: Path, metadata: dict[str, str]) -> None:
    """PNG with tEXt chunks; Pillow comes with scikit-image, whose imsave cannot add them."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        info.add_text("Comment" if key == "note" else key, value)
    Image.fromarray(pixels).save(target, format="PNG", pnginfo=info)


def _raster_dtype(pixels: np.ndarray, target: Path) -> np.ndarray:
    """uint8 for masks and 8-bit data, uint16 when values need it; float kept only for TIFF."""
    is_tiff = target.suffix.lower() in (".tif", ".tiff")
    integral = pixels.dtype.kind in "biu" or bool(np.all(np.isfinite(pixels)) and np.all(np.mod(pixels, 1) == 0))
    if not integral:
        if is_tiff:
            return pixels.astype(np.float32)
        raise InvalidInputError("cannot write non-integer values to this 2D format (use .tif or .nii.gz)",
                                path=target)
    low = float(pixels.min()) if pixels.size else 0.0
    high = float(pixels.max()) if pixels.size else 0.0
    if low >= 0 and high <= 255:
        return pixels.astype(np.uint8)
    if low >= 0 and high <= 65535 and target.suffix.lower() in (".png", ".tif", ".tiff"):
        return pixels.astype(np.uint16)
    raise InvalidInputError(f"values {low:g}..{high:g} do not fit this 2D format", path=target)
