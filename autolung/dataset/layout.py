"""Load a raw dataset in either supported layout and read its cases.

The layout is detected from ``dataset.json``: ``channel_names`` means nnU-Net v2 raw,
``modality``/``training`` means Medical Segmentation Decathlon. Both become one
:class:`DatasetSpec`, so nothing downstream cares which layout the files came in.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from autolung.dataset.dataset_json import DATASET_JSON, read_dataset_json
from autolung.dataset.msd import load_msd
from autolung.dataset.nnunet import load_nnunet
from autolung.dataset.spec import LAYOUT_MSD, LAYOUT_NNUNET, CaseFiles, DatasetSpec
from autolung.errors import InvalidInputError
from autolung.io.compare import geometry_differences
from autolung.io.geometry import ImageGeometry
from autolung.io.images import read_image, read_label, refuse_nonfinite

logger = logging.getLogger(__name__)

__all__ = ["LAYOUT_MSD", "LAYOUT_NNUNET", "CaseFiles", "DatasetSpec", "detect_layout", "load_dataset", "read_case"]


def load_dataset(folder: str | Path, strict: bool = True) -> DatasetSpec:
    """Read ``dataset.json`` of a raw dataset and list its cases.

    Args:
        folder: the dataset folder (holding dataset.json, imagesTr/, labelsTr/).
        strict: raise on the first bad case entry (escaping path, duplicate id, misnamed file);
            with False such entries are skipped and kept in ``spec.issues`` (used by verify).

    Returns:
        The dataset spec. Files are listed, not opened: missing files surface in
        :func:`read_case` or :func:`autolung.dataset.verify.verify_dataset`.

    Raises:
        InvalidInputError: naming dataset.json (or the folder) and the problem.
    """
    folder = Path(folder).expanduser().resolve()
    payload = read_dataset_json(folder)
    json_path = folder / DATASET_JSON
    layout = detect_layout(payload, json_path)
    loader = load_nnunet if layout == LAYOUT_NNUNET else load_msd
    spec = loader(folder, payload, json_path)
    if strict and spec.issues:
        first = spec.issues[0]
        more = f" (and {len(spec.issues) - 1} more; run 'autolung verify')" if len(spec.issues) > 1 else ""
        raise InvalidInputError(first.message + more, path=first.path)
    logger.debug("%s: %s layout, %d cases", folder, layout, len(spec.cases))
    return spec


def detect_layout(payload: dict, json_path: Path) -> str:
    """``"nnunet"`` when dataset.json has ``channel_names``, ``"msd"`` when it has ``modality``/``training``.

    Args:
        payload: the parsed dataset.json.
        json_path: dataset.json, for messages.

    Returns:
        The layout key.

    Raises:
        InvalidInputError: when it looks like neither.
    """
    if "channel_names" in payload:
        return LAYOUT_NNUNET
    if "modality" in payload or "training" in payload:
        return LAYOUT_MSD
    raise InvalidInputError("neither nnU-Net v2 ('channel_names', 'labels', 'file_ending') nor Decathlon "
                            "('modality', 'labels', 'training') layout: missing key 'channel_names' or 'training'",
                            path=json_path)


def read_case(spec: DatasetSpec, case: CaseFiles) -> tuple[np.ndarray, np.ndarray | None, ImageGeometry]:
    """Read one case: all channels stacked, and its label checked against the image grid.

    Args:
        spec: the dataset.
        case: one of ``spec.cases``.

    Returns:
        ``(image (C, Z, Y, X) float32, label (Z, Y, X) int or None, geometry of the image)``.

    Raises:
        InvalidInputError: unreadable file, wrong channel count, or a channel/label on a different
            grid (float noise in spacing/origin/direction is accepted).
    """
    image, geometry = _read_channels(spec, case)
    if case.label is None:
        return image, None, geometry
    label, label_geometry = read_label(case.label)
    differences = geometry_differences(geometry, label_geometry)
    if differences:
        raise InvalidInputError("; ".join(differences), path=case.label)
    if any(tuple(getattr(geometry, key)) != tuple(getattr(label_geometry, key))
           for key in ("spacing", "origin", "direction")):
        logger.warning("%s: geometry differs from the image's by float noise only; using the image's",
                       case.label)
    undeclared = sorted(set(np.unique(label).tolist()) - spec.declared_label_values)
    if undeclared:
        raise InvalidInputError(f"label holds value(s) {undeclared} that dataset.json does not declare "
                                f"(declared: {sorted(spec.declared_label_values)})", path=case.label)
    return image, label, geometry


def _read_channels(spec: DatasetSpec, case: CaseFiles) -> tuple[np.ndarray, ImageGeometry]:
    """Stack the channel files of a case into one float32 ``(C, Z, Y, X)`` array."""
    per_file = 1 if len(case.images) > 1 else spec.num_channels
    arrays: list[np.ndarray] = []
    reference: ImageGeometry | None = None
    for path in case.images:
        data, geometry = read_image(path, expected_channels=per_file)
        refuse_nonfinite(path, data, geometry)
        if reference is None:
            reference = geometry
        else:
            differences = geometry_differences(reference, geometry, what="channel", against=case.images[0].name)
            if differences:
                raise InvalidInputError("; ".join(differences), path=path)
        arrays.append(data.astype(np.float32, copy=False))
    if reference is None:
        raise InvalidInputError(f"case {case.case_id!r} lists no image files", path=spec.dataset_json)
    image = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    if image.shape[0] != spec.num_channels:
        raise InvalidInputError(f"image has {image.shape[0]} channel(s) but dataset.json declares "
                                f"{spec.num_channels} ({', '.join(spec.channel_names)})", path=case.images[0])
    return image, reference
