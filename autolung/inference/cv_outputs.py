"""Saved probabilities: cross-validation outputs of training and ``predict --save-probabilities``.

One file per case, ``<case>.npz`` (numpy archive, no pickles), holding:

- ``probabilities``: float16 ``(R, Z, Y, X)`` sigmoid probabilities per region channel, already
  restored to the original image grid (``restore_to_original``), so ``Z, Y, X`` equals the
  input's ``geometry.shape``;
- ``geometry``: 0-d unicode array, JSON of :meth:`ImageGeometry.to_json` of the original image;
- ``region_mapping``: 0-d unicode array, JSON of :meth:`RegionMapping.to_json`;
- ``case_id``: 0-d unicode array.

float16 halves disk use; its 1e-3 resolution near 0.5 does not change thresholded labels in any
case that matters for model choice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autolung.errors import InvalidInputError
from autolung.io.geometry import ImageGeometry
from autolung.labels import RegionMapping
from autolung.utils.atomic import atomic_path

PROBABILITIES_SUFFIX = ".npz"


@dataclass
class SavedProbabilities:
    """One case's saved probabilities with what is needed to write its mask."""

    case_id: str
    probabilities: np.ndarray
    geometry: ImageGeometry
    region_mapping: RegionMapping


def probabilities_path(folder: str | Path, case_id: str) -> Path:
    """Where the probabilities of ``case_id`` live inside ``folder``."""
    return Path(folder) / f"{case_id}{PROBABILITIES_SUFFIX}"


def save_cv_probabilities(folder: str | Path, case_id: str, probabilities: np.ndarray, geometry: ImageGeometry,
                          region_mapping: RegionMapping) -> Path:
    """Write ``<folder>/<case_id>.npz`` atomically.

    Args:
        folder: output folder (e.g. ``fold_k/validation``), created if missing.
        case_id: case identifier, the file stem.
        probabilities: ``(R, *geometry.shape)`` probabilities in the original image grid.
        geometry: the original image's geometry.
        region_mapping: the plans' region mapping (channels -> labels).

    Returns:
        The written path.
    """
    if tuple(probabilities.shape[1:]) != tuple(geometry.shape):
        raise ValueError(f"probabilities {probabilities.shape} do not match geometry shape {geometry.shape}")
    target = probabilities_path(folder, case_id)
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, probabilities=probabilities.astype(np.float16, copy=False),
                            geometry=np.array(json.dumps(geometry.to_json())),
                            region_mapping=np.array(json.dumps(region_mapping.to_json())),
                            case_id=np.array(case_id))
    return target


def load_cv_probabilities(path: str | Path, dtype: type = np.float32) -> SavedProbabilities:
    """Read a file written by :func:`save_cv_probabilities` (pickles refused).

    Args:
        path: the ``.npz`` file.
        dtype: dtype of the returned probabilities.

    Returns:
        The saved case.

    Raises:
        InvalidInputError: when the file is missing, unreadable or lacks a key.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return SavedProbabilities(
                case_id=str(archive["case_id"]),
                probabilities=archive["probabilities"].astype(dtype),
                geometry=ImageGeometry.from_json(json.loads(str(archive["geometry"]))),
                region_mapping=RegionMapping.from_json(json.loads(str(archive["region_mapping"]))),
            )
    except FileNotFoundError:
        raise InvalidInputError("probabilities file not found", path=path) from None
    except (KeyError, ValueError, OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"not a valid autolung probabilities file ({exc})", path=path) from None


def list_saved_cases(folder: str | Path) -> dict[str, Path]:
    """``{case_id: path}`` of all saved probabilities in ``folder``, sorted by case id."""
    folder = Path(folder)
    found = {p.name[: -len(PROBABILITIES_SUFFIX)]: p for p in folder.glob(f"*{PROBABILITIES_SUFFIX}")
             if not p.name.startswith(".")}
    return dict(sorted(found.items()))
