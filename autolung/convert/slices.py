"""A 3D dataset -> a 2D dataset of its slices (nnU-Net layout, 2D ``.nii.gz`` files).

Each slice keeps its in-plane spacing, and its origin is the physical position of the slice's
first voxel (in-plane components), so the slices line up with the volume they came from.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from autolung.convert.dataset_writer import DatasetWriter
from autolung.convert.source import load_source, output_labels
from autolung.dataset.spec import LAYOUT_NNUNET, CaseFiles, DatasetSpec
from autolung.errors import InvalidInputError
from autolung.progress import ProgressReporter, reporter, track
from autolung.io.geometry import SPACING_2D_SLICE, ImageGeometry
from autolung.io.images import read_image, read_label, write_image
from autolung.utils.staging import check_output_folder, staged_folder

logger = logging.getLogger(__name__)

SLICE_ENDING = ".nii.gz"
_AXIS_LETTERS = "zyx"


def slice_geometry(geometry: ImageGeometry, axis: int, index: int) -> ImageGeometry:
    """The 2D geometry of slice ``index`` along array ``axis`` of a 3D image.

    Args:
        geometry: the volume's geometry (array order z, y, x; ITK order origin/direction).
        axis: 0 (z), 1 (y) or 2 (x).
        index: the slice number.

    Returns:
        A geometry with ``file_dims == 2``, shape ``(1, rows, cols)`` and the kept spacings.
    """
    kept = [a for a in range(3) if a != axis]
    direction = np.asarray(geometry.direction, dtype=float).reshape(3, 3)
    spacing_itk = np.asarray(geometry.spacing[::-1], dtype=float)
    sliced_itk = 2 - axis
    corner = np.asarray(geometry.origin, dtype=float) + direction[:, sliced_itk] * spacing_itk[sliced_itk] * index
    # ITK order of the two kept axes: columns (x-like) first, then rows.
    kept_itk = sorted(2 - a for a in kept)
    sub = direction[np.ix_(kept_itk, kept_itk)]
    if not np.allclose(sub @ sub.T, np.eye(2), atol=1e-4):
        # An oblique volume: the in-plane part of its direction is no rotation; fall back to identity.
        sub = np.eye(2)
    return ImageGeometry(shape=(1, geometry.shape[kept[0]], geometry.shape[kept[1]]),
                         spacing=(SPACING_2D_SLICE, geometry.spacing[kept[0]], geometry.spacing[kept[1]]),
                         origin=tuple(float(corner[i]) for i in kept_itk),
                         direction=tuple(float(v) for v in sub.ravel()), file_dims=2, file_format="nifti")


def slice_case_id(case_id: str, axis: int, index: int) -> str:
    """``lung_001`` slice 12 along z -> ``lung_001_z0012`` (the letter keeps it apart from channel suffixes)."""
    return f"{case_id}_{_AXIS_LETTERS[axis]}{index:04d}"


def convert_slices(input_folder: Path, output: Path, axis: int = 0, only_labelled: bool = False,
                   overwrite: bool = False, progress: ProgressReporter | None = None) -> Path:
    """Write every slice of a 3D dataset as a case of a new 2D nnU-Net dataset.

    Args:
        input_folder: a 3D dataset (either layout).
        output: the 2D dataset folder to create (staged, renamed at the end).
        axis: array axis to slice along: 0 (z, axial for usual CT), 1 (y) or 2 (x).
        only_labelled: keep only slices whose label holds foreground (unlabelled cases are dropped).
        overwrite: replace a non-empty ``output``.
        progress: receives the "slice" task, one step per case (default: nothing).

    Returns:
        The new dataset folder.
    """
    if axis not in (0, 1, 2):
        raise InvalidInputError(f"`axis` must be 0, 1 or 2, got {axis}", path=input_folder)
    check_output_folder(output, (input_folder,), overwrite)
    spec, cases = load_source(input_folder)
    if spec.is_2d:
        raise InvalidInputError("dataset is already 2D; slicing needs 3D images", path=input_folder)
    labels, extra = output_labels(spec, LAYOUT_NNUNET)
    extra = {**extra, "description": f"2D slices along axis {axis} of {spec.name}"}
    with staged_folder(output) as staging:
        writer = DatasetWriter(staging, LAYOUT_NNUNET, output.name, list(spec.channel_names), labels,
                               SLICE_ENDING, extra=extra)
        for case in track(cases, reporter(progress), "slice", len(cases)):
            if case.label is not None or not only_labelled:
                _write_slices(writer, spec, case, axis, only_labelled)
        writer.write_dataset_json()
    return output


def _read_volume(spec: DatasetSpec, case: CaseFiles) -> tuple[np.ndarray, np.ndarray | None, ImageGeometry]:
    """Image ``(C, Z, Y, X)`` in its file dtype, label or None, and geometry."""
    per_file = 1 if len(case.images) > 1 else spec.num_channels
    parts = [read_image(path, expected_channels=per_file) for path in case.images]
    geometry = parts[0][1]
    image = np.concatenate([array for array, _ in parts], axis=0)
    label = None
    if case.label is not None:
        label, label_geometry = read_label(case.label)
        if tuple(label_geometry.shape) != tuple(geometry.shape):
            raise InvalidInputError(f"label shape {label_geometry.shape} differs from the image's {geometry.shape}",
                                    path=case.label)
    return image, label, geometry


def _write_slices(writer: DatasetWriter, spec: DatasetSpec, case: CaseFiles, axis: int, only_labelled: bool) -> None:
    image, label, geometry = _read_volume(spec, case)
    written = 0
    for index in range(geometry.shape[axis]):
        label_slice = None if label is None else np.take(label, index, axis=axis)
        if only_labelled and (label_slice is None or not np.any(label_slice)):
            continue
        case_id = slice_case_id(case.case_id, axis, index)
        plane = slice_geometry(geometry, axis, index)
        image_slice = np.take(image, index, axis=axis + 1)[:, None]
        for channel, target in enumerate(writer.image_targets(case_id, label_slice is not None)):
            write_image(image_slice[channel], plane, target)
        if label_slice is not None:
            write_image(label_slice[None], plane, writer.label_target(case_id))
        writer.add_case(case_id, label_slice is not None)
        written += 1
    logger.debug("%s: %d slices", case.case_id, written)
