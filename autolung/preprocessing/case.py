"""Preprocessing of one case: crop, normalize, resample, and the properties to undo it.

The predictor calls :func:`preprocess_case` with ``label=None`` on new images, so training and
inference see exactly the same transformation.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from autolung import __version__
from autolung.errors import InvalidInputError
from autolung.io.geometry import ImageGeometry
from autolung.planning.plans import ConfigurationPlan, Plans
from autolung.preprocessing.crop import crop_to_bbox, nonzero_bbox
from autolung.preprocessing.normalization import normalize
from autolung.preprocessing.resampling import (compute_new_shape, find_anisotropic_axis, resample_image,
                                               resample_labels)

# Foreground oversampling draws from these; 10k points per class (at least 1% of the class
# when it is larger) cover a class well while keeping the properties file small.
MAX_LOCATIONS_PER_CLASS = 10_000
MIN_LOCATION_FRACTION = 0.01
LOCATION_SEED = 1234


def target_spacing(configuration: ConfigurationPlan, spacing: tuple[float, ...] | list[float]) -> list[float]:
    """Spacing a case is resampled to: the plan's, except that 2d keeps the case's own slice spacing.

    Args:
        configuration: the configuration plan.
        spacing: the case's spacing (z, y, x).

    Returns:
        Target spacing (z, y, x).
    """
    if configuration.dim == 2:
        return [float(spacing[0]), *(float(s) for s in configuration.spacing[1:])]
    return [float(s) for s in configuration.spacing]


def resampling_setup(configuration: ConfigurationPlan, spacing: list[float] | tuple[float, ...],
                     shape: list[int] | tuple[int, ...]) -> tuple[tuple[int, ...], list[float], int | None]:
    """New shape, target spacing and anisotropic axis for a cropped case.

    Args:
        configuration: the configuration plan.
        spacing: the case's spacing (z, y, x).
        shape: the cropped spatial shape.

    Returns:
        ``(new_shape, target_spacing, anisotropic_axis)``. A 2d configuration never resamples
        along z, which is the anisotropic path with the slice axis unchanged.
    """
    target = target_spacing(configuration, spacing)
    new_shape = compute_new_shape(shape, spacing, target)
    if configuration.dim == 2:
        new_shape = (int(shape[0]), *new_shape[1:])
        return new_shape, target, 0
    axis = find_anisotropic_axis(spacing, target, configuration.anisotropic_axis)
    return new_shape, target, axis


def preprocess_case(image: np.ndarray, label: np.ndarray | None, geometry: ImageGeometry, plans: Plans,
                    configuration_name: str, case_id: str | None = None, plans_digest: str | None = None,
                    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Turn one raw case into network input on the configuration's grid.

    Args:
        image: ``(C, Z, Y, X)`` image (not modified).
        label: ``(Z, Y, X)`` integer labels, or None at inference.
        geometry: the image's geometry (spacing in z, y, x).
        plans: the dataset's plans.
        configuration_name: e.g. ``"3d_fullres"``.
        case_id: recorded in the properties.
        plans_digest: ``plans.digest()`` when the caller already has it (saves recomputing it).

    Returns:
        ``(data, seg, properties)``: float32 ``(C, Z', Y', X')``, int8 ``(1, Z', Y', X')`` or None,
        and the properties dict of docs/architecture.md.

    Raises:
        InvalidInputError: when image, label and plans disagree on shapes or channels.
    """
    configuration = plans.configuration(configuration_name)
    _check_inputs(image, label, geometry, configuration, case_id)
    bbox = nonzero_bbox(image)
    # The only full-size copy: normalization works in place on it, the caller's array stays intact.
    data = crop_to_bbox(image, bbox).astype(np.float32, copy=True)
    normalize(data, configuration.normalization)
    spacing = [float(s) for s in geometry.spacing]
    new_shape, spacing_after, axis = resampling_setup(configuration, spacing, data.shape[1:])
    shape_after_crop = list(data.shape[1:])
    data = resample_image(data, new_shape, configuration.resample_order_image, axis,
                          configuration.resample_order_image_out_of_plane)
    seg = None
    locations: dict[str, list[list[int]]] = {}
    if label is not None:
        seg = resample_labels(crop_to_bbox(label, bbox), new_shape, axis,
                              configuration.resample_order_labels_out_of_plane)
        ignore = plans.region_mapping.ignore_label
        locations = sample_class_locations(seg, [v for v in plans.labels.values() if v > 0 and v != ignore])
        seg = seg[None]
    properties = {
        "case_id": case_id,
        "autolung_version": __version__,
        "plans_digest": plans_digest or plans.digest(),
        "original_geometry": geometry.to_json(),
        "shape_before_crop": [int(s) for s in image.shape[1:]],
        "crop_bbox": bbox,
        "shape_after_crop": shape_after_crop,
        "shape_after_resampling": [int(s) for s in new_shape],
        "spacing_after_resampling": spacing_after,
        "anisotropic_axis": axis,
        "class_locations": locations,
    }
    return data, seg, properties


def _check_inputs(image: np.ndarray, label: np.ndarray | None, geometry: ImageGeometry,
                  configuration: ConfigurationPlan, case_id: str | None) -> None:
    where = case_id or "case"
    if image.ndim != 4:
        raise InvalidInputError(f"image must be (C, Z, Y, X), got shape {image.shape}", path=where)
    if image.shape[0] != len(configuration.normalization):
        raise InvalidInputError(f"image has {image.shape[0]} channel(s) but the plans expect "
                                f"{len(configuration.normalization)}", path=where)
    if label is not None and tuple(label.shape) != tuple(image.shape[1:]):
        raise InvalidInputError(f"label shape {tuple(label.shape)} differs from image shape "
                                f"{tuple(image.shape[1:])}", path=where)
    if len(geometry.spacing) != 3 or min(geometry.spacing) <= 0:
        raise InvalidInputError(f"spacing must be 3 positive numbers (z, y, x), got {geometry.spacing}", path=where)


def sample_class_locations(seg: np.ndarray, classes: list[int], seed: int = LOCATION_SEED,
                           max_per_class: int = MAX_LOCATIONS_PER_CLASS,
                           min_fraction: float = MIN_LOCATION_FRACTION) -> dict[str, list[list[int]]]:
    """Sample voxel coordinates of each class, for foreground oversampling during training.

    Args:
        seg: ``(Z, Y, X)`` labels.
        classes: label values to sample (background excluded by the caller).
        seed: fixed seed, so preprocessing twice gives identical files.
        max_per_class: cap on samples per class...
        min_fraction: ...unless that is below this fraction of the class's voxels.

    Returns:
        ``{"<label>": [[z, y, x], ...]}`` with an empty list for absent classes.
    """
    rng = np.random.default_rng(seed)
    flat = seg.reshape(-1)
    locations: dict[str, list[list[int]]] = {}
    for value in classes:
        # Flat indices (one int64 per voxel of the class) rather than argwhere's three.
        indices = np.flatnonzero(flat == value)
        wanted = min(indices.size, max(max_per_class, math.ceil(indices.size * min_fraction)))
        if wanted < indices.size:
            indices = np.sort(rng.choice(indices, size=wanted, replace=False))
        coords = np.stack(np.unravel_index(indices, seg.shape), axis=1)
        locations[str(int(value))] = coords.astype(int).tolist()
    return locations
