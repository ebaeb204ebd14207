"""What ``predict -i`` accepts, grouped into cases.

- a single image file: one single-channel case;
- a DICOM series folder: one case named after the folder;
- a folder of images: files ``<case>_<XXXX><ending>`` are the channels of ``<case>`` (nnU-Net
  naming), any other image file is a single-channel case; sub-folders holding a DICOM series
  are one case each.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autolung.errors import InvalidInputError
from autolung.io.formats import format_of, strip_ending, write_ending_for
from autolung.io.geometry import ImageGeometry


@dataclass(frozen=True)
class InputCase:
    """One case to predict.

    Attributes:
        case_id: output file stem.
        sources: one path per channel (files), or a single DICOM series folder.
        is_dicom: sources is one DICOM folder.
    """

    case_id: str
    sources: tuple[Path, ...]
    is_dicom: bool = False


def discover_cases(input_path: Path) -> list[InputCase]:
    """Cases found at ``input_path`` (see the module docstring).

    Args:
        input_path: file or folder given to ``predict -i``.

    Returns:
        Cases sorted by id.

    Raises:
        InvalidInputError: when nothing usable is found.
    """
    from autolung.io.images import image_files_in

    input_path = Path(input_path)
    if input_path.is_file():
        format_of(input_path)  # raises a clear error for unsupported endings
        stem = strip_ending(input_path)
        # A lone nnU-Net channel file names its case without the channel suffix.
        case_id = stem[:-5] if stem.endswith("_0000") and len(stem) > 5 else stem
        return [InputCase(case_id, (input_path,))]
    if not input_path.is_dir():
        raise InvalidInputError("input not found", path=input_path)
    cases = [InputCase(case_id, tuple(sources), is_dicom=sources[0].is_dir())
             for case_id, sources in image_files_in(input_path).items()]
    if not cases:
        raise InvalidInputError("no images or DICOM series found", path=input_path)
    return cases


def read_input_case(case: InputCase, expected_channels: int | None = None) -> tuple[np.ndarray, ImageGeometry]:
    """Read all channels of a case into ``(C, Z, Y, X)`` float32 with the first channel's geometry.

    Args:
        case: the case.
        expected_channels: channels the model takes (decides how colour raster files are read).

    Returns:
        The image and its geometry.
    """
    from autolung.io.images import read_image, refuse_nonfinite

    per_file = expected_channels if len(case.sources) == 1 else 1
    arrays, geometry = [], None
    for source in case.sources:
        array, source_geometry = read_image(source, expected_channels=per_file)
        refuse_nonfinite(source, array, source_geometry)
        if geometry is not None and tuple(source_geometry.shape) != tuple(geometry.shape):
            raise InvalidInputError(f"channel shape {source_geometry.shape} differs from {geometry.shape}",
                                    path=source)
        geometry = geometry or source_geometry
        arrays.append(np.asarray(array, dtype=np.float32))
    assert geometry is not None
    image = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    _check_input_image(case, image, expected_channels)
    return image, geometry


def _check_input_image(case: InputCase, image: np.ndarray, expected_channels: int | None) -> None:
    """Refuse, naming the file, what a network cannot segment: wrong channels or a 1-voxel axis."""
    where = case.sources[0] if len(case.sources) == 1 else case.sources[0].parent
    if expected_channels is not None and image.shape[0] != expected_channels:
        raise InvalidInputError(f"image has {image.shape[0]} channel(s) (shape {tuple(image.shape[1:])} each) but "
                                f"the model expects {expected_channels}; is it a 4D file where 3D is expected?",
                                path=where)
    if min(image.shape[2:]) <= 1:
        raise InvalidInputError(f"image is degenerate: only 1 voxel along an in-plane axis "
                                f"(shape {tuple(image.shape[1:])})", path=where)


def mask_ending(case: InputCase) -> str:
    """Ending of the mask written for ``case``: the input's format, NIfTI for DICOM."""
    if case.is_dicom:
        return ".nii.gz"
    return write_ending_for(format_of(case.sources[0]))
