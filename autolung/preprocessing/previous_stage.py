"""The cascade's extra input: a previous stage's label map on this stage's network grid, one-hot.

``3d_cascade_fullres`` sees the image channels followed by one channel per foreground label of
the ``3d_lowres`` prediction. Training takes that prediction from the lowres cross-validation
(``fold_<k>/validation/<case><ending>``: every case predicted by the fold that did not train on
it); prediction runs the lowres model first. Both bring the label map, on the original image
grid, onto the preprocessed grid exactly as preprocessing brings a label map (same crop, same
label resampling), so training and prediction feed the network the same thing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from autolung.planning.plans import ConfigurationPlan, Plans
from autolung.preprocessing.crop import crop_to_bbox
from autolung.preprocessing.resampling import resample_labels


def previous_stage_labels(plans: Plans) -> list[int]:
    """The label values that get a one-hot channel: every foreground label but the ignore label.

    Returns:
        Sorted label values.
    """
    ignore = plans.region_mapping.ignore_label
    return sorted(v for v in plans.labels.values() if v > 0 and v != ignore)


def previous_stage_on_grid(label_map: np.ndarray, properties: dict[str, Any],
                           configuration: ConfigurationPlan) -> np.ndarray:
    """A label map of the original image brought onto a preprocessed case's grid.

    Args:
        label_map: ``(Z, Y, X)`` labels with the original image's shape.
        properties: the preprocessed case's properties (crop box, resampled shape, axis).
        configuration: the configuration the case was preprocessed for.

    Returns:
        int8 ``(Z', Y', X')`` on the preprocessed grid.

    Raises:
        ValueError: a label map whose shape is not the original image's.
    """
    expected = tuple(int(s) for s in properties["shape_before_crop"])
    if tuple(label_map.shape) != expected:
        raise ValueError(f"previous-stage label map has shape {tuple(label_map.shape)}, the image {expected}")
    cropped = crop_to_bbox(np.asarray(label_map), properties["crop_bbox"])
    resampled = resample_labels(cropped, properties["shape_after_resampling"], properties["anisotropic_axis"],
                                configuration.resample_order_labels_out_of_plane)
    return resampled.astype(np.int8, copy=False)


def one_hot(seg: np.ndarray, labels: list[int]) -> np.ndarray:
    """float32 ``(len(labels), *seg.shape)``: 1 where ``seg`` equals each label."""
    out = np.empty((len(labels), *seg.shape), dtype=np.float32)
    for channel, value in enumerate(labels):
        np.equal(seg, value, out=out[channel], casting="unsafe")
    return out


def with_previous_stage(data: np.ndarray, previous: np.ndarray, labels: list[int]) -> np.ndarray:
    """Network input of a cascade: the image channels then the one-hot previous stage.

    Args:
        data: ``(C, *spatial)`` image channels.
        previous: ``(*spatial)`` previous-stage labels on the same grid.
        labels: label values to encode (:func:`previous_stage_labels`).

    Returns:
        float32 ``(C + len(labels), *spatial)``.
    """
    if tuple(previous.shape) != tuple(data.shape[1:]):
        raise ValueError(f"previous stage {tuple(previous.shape)} and image {tuple(data.shape[1:])} differ")
    return np.concatenate([np.asarray(data, dtype=np.float32), one_hot(previous, labels)])
