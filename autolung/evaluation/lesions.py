"""Lesion-wise metrics: connected components of reference and prediction matched by overlap.

Components use full connectivity (26 neighbours in 3D). A reference lesion is detected (TP)
when at least ``min_overlap`` of its voxels lie in the predicted mask; otherwise it is missed (FN).
A predicted component overlapping no reference lesion by at least ``min_overlap`` of its own voxels
is a false positive (FP). Per-lesion Dice compares each reference lesion with the union of the
predicted components that touch it (0 for a missed lesion).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    labelled, count = ndimage.label(mask, structure=structure)
    return labelled, int(count)


def _overlap_table(ref_labels: np.ndarray, n_ref: int, pred_labels: np.ndarray, n_pred: int) -> np.ndarray:
    """Voxel counts of overlap, shape ``(n_ref + 1, n_pred + 1)`` (row/column 0: background)."""
    both = ref_labels.astype(np.int64) * (n_pred + 1) + pred_labels
    return np.bincount(both.ravel(), minlength=(n_ref + 1) * (n_pred + 1)).reshape(n_ref + 1, n_pred + 1)


def lesion_metrics(ref: np.ndarray, pred: np.ndarray, spacing: Sequence[float] | None = None,
                   min_overlap: float = 0.0) -> dict[str, object]:
    """Lesion detection counts and per-lesion Dice for one case and one class.

    Args:
        ref: reference boolean mask.
        pred: predicted boolean mask, same shape.
        spacing: voxel size in mm (for lesion volumes); None gives voxel counts only.
        min_overlap: fraction of a component that must overlap to count as a match; 0 means
            any shared voxel.

    Returns:
        dict with tp, fn, fp (lesion counts), sensitivity (NaN without reference lesions),
        lesion_dice (list, one per reference lesion), lesion_volumes_ml (per reference lesion).
    """
    ref_labels, n_ref = _label(ref.astype(bool))
    pred_labels, n_pred = _label(pred.astype(bool))
    table = _overlap_table(ref_labels, n_ref, pred_labels, n_pred)
    ref_sizes, pred_sizes = table.sum(axis=1), table.sum(axis=0)
    overlap = table[1:, 1:]
    # At least one shared voxel, and at least ``min_overlap`` of the component.
    ref_hit = overlap >= np.maximum(min_overlap * ref_sizes[1:, None], 1)
    pred_hit = overlap >= np.maximum(min_overlap * pred_sizes[None, 1:], 1)
    detected = ref_hit.any(axis=1)
    false_positive = ~pred_hit.any(axis=0)
    dices = []
    for index in range(n_ref):
        touching = overlap[index] > 0
        shared = int(overlap[index, touching].sum())
        dices.append(2.0 * shared / (ref_sizes[index + 1] + pred_sizes[1:][touching].sum()))
    voxel_ml = float(np.prod(spacing)) / 1000.0 if spacing is not None else math.nan
    tp = int(detected.sum())
    return {"tp": tp, "fn": int(n_ref - tp), "fp": int(false_positive.sum()),
            "sensitivity": tp / n_ref if n_ref else math.nan,
            "lesion_dice": [float(d) for d in dices],
            "lesion_volumes_ml": [float(s * voxel_ml) for s in ref_sizes[1:]]}


def summarise_lesions(per_case: Sequence[dict[str, object]]) -> dict[str, float]:
    """Dataset-level lesion statistics of one class.

    Args:
        per_case: :func:`lesion_metrics` results of every case.

    Returns:
        Totals (tp, fn, fp), lesion sensitivity (pooled TP / reference lesions), FP per case,
        and mean/median per-lesion Dice over all reference lesions.
    """
    tp = sum(int(c["tp"]) for c in per_case)
    fn = sum(int(c["fn"]) for c in per_case)
    fp = sum(int(c["fp"]) for c in per_case)
    dices = [d for c in per_case for d in c["lesion_dice"]]  # type: ignore[union-attr]
    return {"lesions_tp": tp, "lesions_fn": fn, "lesions_fp": fp,
            "lesion_sensitivity": tp / (tp + fn) if tp + fn else math.nan,
            "fp_per_case": fp / len(per_case) if per_case else math.nan,
            "lesion_dice_mean": float(np.mean(dices)) if dices else math.nan,
            "lesion_dice_median": float(np.median(dices)) if dices else math.nan,
            "num_reference_lesions": tp + fn}
