"""Connected-component postprocessing of label maps, and its choice from cross-validation.

Rules apply per label (or region) and are kept only when they raise the cross-validation Dice:

- ``largest_component``: keep only the largest connected component of the label;
- ``min_size``: remove components smaller than ``min_size_voxels``.

Removed voxels become background. Saved as ``{"rules": [{"label": 1, "method": ...}, ...]}``.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from autolung.evaluation.metrics import LabelSpec, label_mask, mean_dice

logger = logging.getLogger(__name__)

METHODS = ("largest_component", "min_size")
# Candidate size thresholds, as fractions of the median reference component size of the label.
SIZE_FRACTIONS = (0.05, 0.2)


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)  # full connectivity
    labelled, count = ndimage.label(mask, structure=structure)
    sizes = np.bincount(labelled.ravel(), minlength=count + 1)
    return labelled, sizes


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component (full connectivity) of a boolean mask."""
    labelled, sizes = _components(mask)
    if sizes.size <= 1:
        return mask.copy()
    sizes[0] = 0
    return labelled == int(np.argmax(sizes))


def remove_small_components(mask: np.ndarray, min_size_voxels: int) -> np.ndarray:
    """The mask without connected components smaller than ``min_size_voxels``."""
    labelled, sizes = _components(mask)
    keep = sizes >= min_size_voxels
    keep[0] = False
    return keep[labelled]


def apply_rule(seg: np.ndarray, rule: dict) -> np.ndarray:
    """Apply one rule to a label map; returns a new map.

    Args:
        seg: label map (Z, Y, X).
        rule: ``{"label": int | list[int], "method": ..., "min_size_voxels": int}``.

    Returns:
        The postprocessed label map.
    """
    label = rule["label"]
    mask = label_mask(seg, label)
    if rule["method"] == "largest_component":
        kept = keep_largest_component(mask)
    elif rule["method"] == "min_size":
        kept = remove_small_components(mask, int(rule["min_size_voxels"]))
    else:
        raise ValueError(f"unknown postprocessing method {rule['method']!r}; known: {METHODS}")
    result = seg.copy()
    result[mask & ~kept] = 0
    return result


def apply_postprocessing(seg: np.ndarray, postprocessing: dict | None) -> np.ndarray:
    """Apply every rule of a postprocessing description (None or no rules: unchanged)."""
    if not postprocessing:
        return seg
    for rule in postprocessing.get("rules", []):
        seg = apply_rule(seg, rule)
    return seg


def _candidate_rules(pairs: Sequence[tuple[np.ndarray, np.ndarray]], label: LabelSpec) -> list[dict]:
    rules = [{"label": label, "method": "largest_component"}]
    sizes = []
    for ref, _ in pairs:
        _, component_sizes = _components(label_mask(ref, label))
        sizes.extend(component_sizes[1:].tolist())
    if sizes:
        median = float(np.median(sizes))
        for fraction in SIZE_FRACTIONS:
            rules.append({"label": label, "method": "min_size", "min_size_voxels": max(2, int(median * fraction))})
    return rules


def choose_postprocessing(pairs: Sequence[tuple[np.ndarray, np.ndarray]], labels: Sequence[LabelSpec],
                          min_gain: float = 1e-4, ignore_label: int | None = None) -> dict:
    """Pick per label the rule that most improves mean Dice over the given cases, if any does.

    Rules act on the whole prediction (components reach into unannotated voxels too); only the
    Dice that judges them leaves out the voxels the reference marks ``ignore_label``. Cases where
    reference and prediction are both empty (Dice undefined) are left out of the mean.

    Args:
        pairs: ``(reference, prediction)`` label maps, e.g. every cross-validation case.
        labels: labels (or regions) to consider, in order; each choice is applied before the next.
        min_gain: minimal mean Dice improvement for a rule to be kept.
        ignore_label: reference value of unannotated voxels, or None.

    Returns:
        ``{"rules": [...], "dice_before": {...}, "dice_after": {...}}``.
    """
    pairs = [(ref, pred) for ref, pred in pairs]
    rules, before, after = [], {}, {}
    for label in labels:
        key = str(label)
        baseline = mean_dice(pairs, label, ignore_label)
        before[key], best_score, best_rule = baseline, baseline, None
        for rule in _candidate_rules(pairs, label):
            score = mean_dice([(ref, apply_rule(pred, rule)) for ref, pred in pairs], label, ignore_label)
            if score > best_score + min_gain:
                best_score, best_rule = score, rule
        after[key] = best_score
        if best_rule is not None:
            rules.append(best_rule)
            pairs = [(ref, apply_rule(pred, best_rule)) for ref, pred in pairs]
            logger.info("postprocessing for label %s: %s (Dice %.4f -> %.4f)", key, best_rule, baseline, best_score)
    return {"rules": rules, "dice_before": before, "dice_after": after}
