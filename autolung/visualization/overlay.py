"""QC pictures: a montage of slices through the segmented structures.

The slices are chosen where the masks have most voxels, so a reviewer sees the structures rather
than empty slices. CT gets a lung or soft-tissue window; other images a percentile window.
Prediction and reference are drawn as outlines in different colours so both stay visible.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from autolung.provenance import figure_metadata
from autolung.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

CT_WINDOWS = {"lung": (-1350.0, 150.0), "soft_tissue": (-160.0, 240.0)}
PREDICTION_COLOUR = (1.0, 0.15, 0.1)
REFERENCE_COLOUR = (0.1, 0.9, 0.2)


def choose_slices(masks: list[np.ndarray], num_slices: int) -> list[int]:
    """Pick slice indices (axis 0) spread over the slices where any mask is present.

    Args:
        masks: label maps (Z, Y, X); empty ones are ignored.
        num_slices: how many slices at most.

    Returns:
        Sorted slice indices; the middle slices of the volume when every mask is empty.
    """
    depth = masks[0].shape[0] if masks else 1
    per_slice = np.zeros(depth, dtype=np.int64)
    for mask in masks:
        per_slice += (mask > 0).reshape(depth, -1).sum(axis=1)
    present = np.flatnonzero(per_slice)
    if present.size == 0:
        present = np.arange(depth)
    count = min(num_slices, present.size)
    picks = np.linspace(0, present.size - 1, count).round().astype(int)
    return sorted({int(present[i]) for i in picks})


def window_image(image: np.ndarray, is_ct: bool, window: str = "lung") -> np.ndarray:
    """Map intensities to 0..1 for display."""
    if is_ct:
        low, high = CT_WINDOWS[window]
    else:
        low, high = np.percentile(image, [0.5, 99.5])
        high = max(high, low + 1e-6)
    return np.clip((image.astype(np.float32) - low) / (high - low), 0.0, 1.0)


def looks_like_ct(image: np.ndarray) -> bool:
    """CT has air near -1000 HU; other images are rarely that negative."""
    return float(np.percentile(image, 1)) < -500.0


def _outline(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    mask = mask > 0
    return mask & ~binary_erosion(mask)


def render_overlay(image: np.ndarray, prediction: np.ndarray, reference: np.ndarray | None,
                   output: str | Path, spacing: tuple[float, ...] = (1.0, 1.0, 1.0), num_slices: int = 6,
                   window: str | None = None, title: str = "", plans_digest: str | None = None,
                   label_name: str = "prediction") -> Path:
    """Write a PNG montage of slices with the prediction (red) and reference (green) outlines.

    Args:
        image: the image (Z, Y, X) or (C, Z, Y, X) (first channel shown).
        prediction: label map (Z, Y, X).
        reference: optional reference label map (Z, Y, X).
        output: PNG path, written atomically.
        spacing: (z, y, x) spacing, used for the in-plane aspect ratio.
        num_slices: slices in the montage.
        window: "lung" or "soft_tissue" for CT; None picks lung for CT.
        title: figure title.
        plans_digest: digest of the plans behind the prediction, kept in the PNG's text fields.
        label_name: what the red outlines show, in the legend ("labels" for dataset QC).

    Returns:
        The output path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if image.ndim == 4:
        image = image[0]
    masks = [prediction] + ([reference] if reference is not None else [])
    slices = choose_slices(masks, num_slices)
    is_ct = looks_like_ct(image)
    shown = window_image(image, is_ct, window or "lung")
    columns = len(slices)
    figure, axes = plt.subplots(1, columns, figsize=(3.2 * columns, 3.6), squeeze=False)
    aspect = float(spacing[1]) / float(spacing[2]) if len(spacing) == 3 else 1.0
    for axis, index in zip(axes[0], slices):
        rgb = np.repeat(shown[index][..., None], 3, axis=-1)
        if reference is not None:
            rgb[_outline(reference[index])] = REFERENCE_COLOUR
        rgb[_outline(prediction[index])] = PREDICTION_COLOUR
        axis.imshow(rgb, aspect=aspect, interpolation="nearest")
        axis.set_title(f"slice {index}", fontsize=9)
        axis.axis("off")
    legend = f"red: {label_name}" + (", green: reference" if reference is not None else "")
    window_name = (window or "lung") + " window" if is_ct else "percentile window"
    figure.suptitle(f"{title}  ({legend}; {window_name})".strip(), fontsize=10)
    figure.tight_layout()
    output = Path(output)
    with atomic_path(output) as tmp:
        figure.savefig(tmp, dpi=90, format="png", metadata=figure_metadata(plans_digest))
    plt.close(figure)
    logger.info("wrote overlay %s", output)
    return output
