"""Moving image and label files into a new dataset: byte copies where possible, else read and write.

A file whose format already matches the target is copied byte for byte, so nothing about it
changes. Otherwise it is read and written with its geometry (spacing, origin, direction) kept.
Multi-channel 3D images written as NIfTI become 4D NIfTI, the Decathlon convention.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autolung.errors import InvalidInputError
from autolung.io.formats import image_ending
from autolung.io.geometry import ImageGeometry
from autolung.io.images import read_image, read_label, write_image
from autolung.io.itk import array_to_image
from autolung.utils.atomic import atomic_path

_NIFTI_ENDINGS = (".nii", ".nii.gz")


def same_ending(source: Path, target: Path) -> bool:
    """True when both files have the same image ending (so a byte copy keeps the format)."""
    return image_ending(source) == image_ending(target)


def copy_file(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically (never touching the source)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def single_channel_geometry(geometry: ImageGeometry) -> ImageGeometry:
    """``geometry`` without the markers of a multi-channel file (4D NIfTI, channel count)."""
    extra = {k: v for k, v in geometry.extra.items() if k not in ("channel_axis", "num_channels", "colour")}
    return dataclasses.replace(geometry, extra=extra)


def write_channels(array: np.ndarray, geometry: ImageGeometry, target: Path) -> None:
    """Write ``(C, Z, Y, X)``: one channel as a plain image, several 3D channels in NIfTI as 4D.

    Args:
        array: the image.
        geometry: its geometry.
        target: the file; its ending picks the format.
    """
    if array.shape[0] > 1 and not geometry.is_2d and image_ending(target) in _NIFTI_ENDINGS:
        write_4d_nifti(array, geometry, target)
        return
    write_image(array[0] if array.shape[0] == 1 else array, single_channel_geometry(geometry), target)


def write_4d_nifti(array: np.ndarray, geometry: ImageGeometry, target: Path) -> None:
    """Write channels as the 4th NIfTI dimension (how Decathlon stores multi-modal images)."""
    plain = single_channel_geometry(geometry)
    volumes = [array_to_image(array[c], plain) for c in range(array.shape[0])]
    joined = sitk.JoinSeries(volumes)
    with atomic_path(target) as tmp:
        sitk.WriteImage(joined, str(tmp), useCompression=True)


def transfer_image(source: Path, target: Path, channels: int = 1) -> None:
    """Put one image file at ``target``: copy when the ending matches, else convert.

    Args:
        source: an image file (any supported format).
        target: where it goes in the new dataset.
        channels: how many channels the file is expected to hold (guides colour raster reads).
    """
    if same_ending(source, target):
        copy_file(source, target)
        return
    array, geometry = read_image(source, expected_channels=channels)
    write_channels(array, geometry, target)


def transfer_label(source: Path, target: Path) -> None:
    """Put one label map at ``target``: copy when the ending matches, else read as integers and write."""
    if same_ending(source, target):
        copy_file(source, target)
        return
    labels, geometry = read_label(source)
    write_image(labels, single_channel_geometry(geometry), target)


def split_channels(source: Path, targets: list[Path]) -> None:
    """Write each channel of a multi-channel file to its own target (Decathlon 4D -> nnU-Net ``_000k``).

    Raises:
        InvalidInputError: when the file does not hold ``len(targets)`` channels.
    """
    if len(targets) == 1:
        transfer_image(source, targets[0])
        return
    array, geometry = read_image(source, expected_channels=len(targets))
    if array.shape[0] != len(targets):
        raise InvalidInputError(f"image has {array.shape[0]} channels, the dataset declares {len(targets)}",
                                path=source)
    for channel, target in enumerate(targets):
        write_image(array[channel], single_channel_geometry(geometry), target)


def join_channels(sources: list[Path], target: Path) -> None:
    """Write one file holding the channels of several single-channel files (nnU-Net -> Decathlon).

    Raises:
        InvalidInputError: when the channel files differ in shape.
    """
    if len(sources) == 1:
        transfer_image(sources[0], target)
        return
    arrays, geometry = [], None
    for source in sources:
        array, this_geometry = read_image(source, expected_channels=1)
        if geometry is not None and this_geometry.shape != geometry.shape:
            raise InvalidInputError(f"channel shape {this_geometry.shape} differs from the first channel's "
                                    f"{geometry.shape}", path=source)
        geometry = geometry or this_geometry
        arrays.append(array[0])
    write_channels(np.stack(arrays), geometry, target)
