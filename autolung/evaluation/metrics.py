"""Overlap, surface and volume metrics per class, respecting voxel spacing.

Empty-mask conventions (see docs/evaluation.md):
- reference and prediction both empty: every metric but the volumes is NaN (undefined), as
  nnU-Net reports it, so that means over cases compare with published nnU-Net figures; the
  summaries leave NaNs out of means and count them (``n_undefined``);
- exactly one empty: Dice, IoU and NSD are 0; precision is 0 when only the reference is empty
  and the prediction is not, recall is 0 when only the prediction is empty; the other one of
  the pair is NaN (0/0); HD95 is NaN (no finite distance exists). NaNs are left out of means,
  and summaries count them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import numpy as np

from autolung.evaluation import surface
from autolung.labels import mask_ignored

LabelSpec = Union[int, Sequence[int]]
METRIC_NAMES = ("dice", "iou", "precision", "recall", "hd95", "nsd", "volume_ref_ml", "volume_pred_ml",
                "volume_diff_ml", "tp", "fp", "fn")


def voxel_volume_ml(spacing: Sequence[float]) -> float:
    """Volume of one voxel in mL (spacing in mm)."""
    return float(np.prod([float(s) for s in spacing])) / 1000.0


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator) / denominator if denominator else math.nan


def overlap_metrics(ref: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Dice, IoU, precision and recall of two boolean masks, with the documented empty conventions.

    Args:
        ref: reference boolean mask.
        pred: predicted boolean mask, same shape.

    Returns:
        dict with dice, iou, precision, recall, tp, fp, fn (voxel counts).
    """
    tp = int(np.count_nonzero(ref & pred))
    n_ref = int(np.count_nonzero(ref))
    n_pred = int(np.count_nonzero(pred))
    fp, fn = n_pred - tp, n_ref - tp
    if n_ref == 0 and n_pred == 0:
        return {"dice": math.nan, "iou": math.nan, "precision": math.nan, "recall": math.nan,
                "tp": 0, "fp": 0, "fn": 0}
    return {"dice": 2.0 * tp / (n_ref + n_pred), "iou": tp / (tp + fp + fn),
            "precision": _ratio(tp, n_pred), "recall": _ratio(tp, n_ref), "tp": tp, "fp": fp, "fn": fn}


def surface_metrics(ref: np.ndarray, pred: np.ndarray, spacing: Sequence[float],
                    tolerance_mm: float) -> dict[str, float]:
    """HD95 (mm) and normalised surface Dice at ``tolerance_mm``, with the empty conventions."""
    ref_any, pred_any = bool(ref.any()), bool(pred.any())
    if not ref_any and not pred_any:
        return {"hd95": math.nan, "nsd": math.nan}
    if not ref_any or not pred_any:
        return {"hd95": math.nan, "nsd": 0.0}
    distances = surface.surface_distances(ref, pred, spacing)
    return {"hd95": surface.hausdorff_percentile(distances, 95.0),
            "nsd": surface.normalized_surface_dice(distances, tolerance_mm)}


def binary_metrics(ref: np.ndarray, pred: np.ndarray, spacing: Sequence[float],
                   tolerance_mm: float = 2.0) -> dict[str, float]:
    """Every per-class metric for one pair of boolean masks.

    Args:
        ref: reference mask (Z, Y, X) bool.
        pred: predicted mask, same shape.
        spacing: voxel size in mm, array order (z, y, x).
        tolerance_mm: NSD tolerance.

    Returns:
        dict keyed by :data:`METRIC_NAMES`.
    """
    if ref.shape != pred.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape}, prediction {pred.shape}")
    ref = ref.astype(bool, copy=False)
    pred = pred.astype(bool, copy=False)
    result = overlap_metrics(ref, pred)
    result.update(surface_metrics(ref, pred, spacing, tolerance_mm))
    voxel_ml = voxel_volume_ml(spacing)
    result["volume_ref_ml"] = float(np.count_nonzero(ref) * voxel_ml)
    result["volume_pred_ml"] = float(np.count_nonzero(pred) * voxel_ml)
    result["volume_diff_ml"] = result["volume_pred_ml"] - result["volume_ref_ml"]
    return {name: result[name] for name in METRIC_NAMES}


def mean_dice(pairs: Sequence[tuple[np.ndarray, np.ndarray]], label: LabelSpec,
              ignore_label: int | None = None) -> float:
    """Mean Dice of one label over ``(reference, prediction)`` pairs; cases where both are empty
    (Dice undefined) are left out; NaN when every case is.

    Args:
        pairs: label maps.
        label: label value or region.
        ignore_label: reference value of unannotated voxels (left out), or None.

    Returns:
        The mean.
    """
    values = []
    for ref, pred in pairs:
        ref, pred = mask_ignored(ref, pred, ignore_label)
        values.append(overlap_metrics(label_mask(ref, label), label_mask(pred, label))["dice"])
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def label_key(label: LabelSpec) -> str:
    """Name of a label or region in reports: ``"2"`` or ``"1+2"``."""
    if isinstance(label, (int, np.integer)):
        return str(int(label))
    return "+".join(str(int(v)) for v in label)


def label_mask(seg: np.ndarray, label: LabelSpec) -> np.ndarray:
    """Boolean mask of one label value, or of a region (several label values)."""
    if isinstance(label, (int, np.integer)):
        return seg == label
    return np.isin(seg, list(label))


def evaluate_case(ref: np.ndarray, pred: np.ndarray, spacing: Sequence[float], labels: Sequence[LabelSpec],
                  tolerance_mm: float = 2.0, ignore_label: int | None = None) -> dict[str, dict[str, float]]:
    """Metrics per label (or region) for one case.

    Args:
        ref: reference label map (Z, Y, X) int.
        pred: predicted label map, same shape.
        spacing: voxel size in mm, array order.
        labels: label values (int) or regions (sequences of label values) to evaluate.
        tolerance_mm: NSD tolerance.
        ignore_label: voxels the reference marks with this value are left out (both masks are
            background there), as nnU-Net does for sparse annotations.

    Returns:
        ``{label_key: {metric: value}}``.
    """
    ref, pred = mask_ignored(ref, pred, ignore_label)
    return {label_key(label): binary_metrics(label_mask(ref, label), label_mask(pred, label), spacing, tolerance_mm)
            for label in labels}
