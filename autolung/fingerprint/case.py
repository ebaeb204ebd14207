"""Statistics of one case: the small record a fingerprint worker sends back.

Everything here works on one image and its label in memory and returns only small numbers plus
at most ``num_samples`` foreground intensities per channel, so the parent process never holds
image data.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

DEFAULT_NUM_SAMPLES = 10_000
PERCENTILES = (0.5, 99.5)


def nonzero_bbox(image: np.ndarray) -> list[list[int]]:
    """Bounding box ``[[z0, z1], [y0, y1], [x0, x1]]`` (end exclusive) of voxels nonzero in any channel.

    Args:
        image: ``(C, Z, Y, X)`` array.

    Returns:
        The box; the whole image when it has no nonzero voxel.
    """
    mask = np.any(image != 0, axis=0)
    if not mask.any():
        return [[0, s] for s in mask.shape]
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        box.append([int(present[0]), int(present[-1]) + 1])
    return box


def intensity_statistics(values: np.ndarray) -> dict[str, float] | None:
    """Mean, std, median, min, max and the 0.5/99.5 percentiles of ``values``; None when empty."""
    if values.size == 0:
        return None
    values = values.astype(np.float64, copy=False)
    low, high = np.percentile(values, PERCENTILES)
    return {"mean": float(values.mean()), "std": float(values.std()), "median": float(np.median(values)),
            "min": float(values.min()), "max": float(values.max()),
            "percentile_00_5": float(low), "percentile_99_5": float(high)}


def case_seed(case_id: str, seed: int) -> int:
    """A per-case seed that does not depend on processing order or Python's hash randomisation."""
    return (zlib.crc32(case_id.encode("utf-8")) ^ seed) & 0xFFFFFFFF


def sample_foreground(image: np.ndarray, foreground: np.ndarray, num_samples: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Up to ``num_samples`` foreground voxels of every channel, shape ``(C, n)`` float32.

    The same voxels are taken in every channel, so multi-channel statistics stay paired.
    """
    index = np.flatnonzero(foreground)
    if index.size > num_samples:
        index = np.sort(rng.choice(index, size=num_samples, replace=False))
    flat = image.reshape(image.shape[0], -1)
    return flat[:, index].astype(np.float32)


def connected_components(label: np.ndarray, value: int, voxel_volume: float) -> dict[str, Any]:
    """Count and sizes of the connected components of ``label == value`` (full connectivity).

    Args:
        label: ``(Z, Y, X)`` label map.
        value: the class.
        voxel_volume: volume of one voxel (mm³, or mm² for 2D images).

    Returns:
        ``{"count": n, "sizes": [sizes in mm³ (mm² for 2D), largest first]}``.
    """
    mask = label == value
    if not mask.any():
        return {"count": 0, "sizes": []}
    # Full (26/8-)connectivity: diagonal neighbours belong to the same lesion, as radiologists count them.
    structure = ndimage.generate_binary_structure(label.ndim, label.ndim)
    components, count = ndimage.label(mask, structure=structure)
    voxels = np.bincount(components.ravel())[1:]
    sizes = sorted((float(v) * voxel_volume for v in voxels), reverse=True)
    return {"count": int(count), "sizes": sizes}


def channel_value_range(image: np.ndarray) -> list[dict[str, Any]]:
    """Per channel: min, max, and whether every value is an integer (8-bit detection)."""
    result = []
    for channel in image:
        result.append({"min": float(channel.min()), "max": float(channel.max()),
                       "integer": bool(np.all(np.mod(channel, 1) == 0))})
    return result


def case_statistics(case_id: str, image: np.ndarray, label: np.ndarray, spacing: Sequence[float],
                    label_values: Sequence[int], is_2d: bool, num_samples: int = DEFAULT_NUM_SAMPLES,
                    seed: int = 0) -> tuple[dict[str, Any], np.ndarray]:
    """The fingerprint record of one case and its foreground intensity samples.

    Args:
        case_id: the case identifier (also seeds the sampling).
        image: ``(C, Z, Y, X)`` float array.
        label: ``(Z, Y, X)`` integer label map.
        spacing: voxel spacing (z, y, x) in mm.
        label_values: the dataset's label values, background included.
        is_2d: the image is a 2D file (sizes are then areas in mm²).
        num_samples: at most this many foreground voxels are sampled.
        seed: base seed of the sampling.

    Returns:
        ``(record, samples)``: the JSON-able record and a ``(C, n)`` float32 sample array.
    """
    box = nonzero_bbox(image)
    shape = [int(s) for s in label.shape]
    cropped = [b[1] - b[0] for b in box]
    foreground = label > 0
    samples = sample_foreground(image, foreground, num_samples, np.random.default_rng(case_seed(case_id, seed)))
    voxel_volume = float(np.prod(spacing[1:] if is_2d else spacing))
    counts = np.bincount(label.ravel().astype(np.int64, copy=False), minlength=max(label_values) + 1)
    total = float(label.size)
    record = {
        "case_id": case_id,
        "spacing": [float(s) for s in spacing],
        "shape": shape,
        "shape_after_crop": cropped,
        "relative_size_after_crop": float(np.prod(cropped) / np.prod(shape)),
        "foreground_intensity": [intensity_statistics(channel) for channel in samples],
        "value_range": channel_value_range(image),
        "class_fractions": {str(v): float(counts[v] / total) if v < counts.size else 0.0 for v in label_values},
        "components": {str(v): connected_components(label, v, voxel_volume) for v in label_values if v != 0},
    }
    return record, samples
