"""Dataset-level summaries of the per-case fingerprint records."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from autolung.fingerprint.case import intensity_statistics

SIZE_PERCENTILES = (5, 25, 50, 75, 95)


def _median_list(rows: Sequence[Sequence[float]]) -> list[float]:
    return [float(v) for v in np.median(np.asarray(rows, dtype=np.float64), axis=0)]


def geometry_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median spacing, shape, cropped shape and relative size after cropping."""
    return {
        "median_spacing": _median_list([r["spacing"] for r in records]),
        "median_shape": _median_list([r["shape"] for r in records]),
        "median_shape_after_crop": _median_list([r["shape_after_crop"] for r in records]),
        "median_relative_size_after_crop": float(np.median([r["relative_size_after_crop"] for r in records])),
    }


def pooled_intensity(samples: Sequence[np.ndarray], num_channels: int) -> list[dict[str, Any] | None]:
    """Foreground intensity statistics per channel from the pooled per-case samples.

    Args:
        samples: one ``(C, n)`` array per case.
        num_channels: C.

    Returns:
        One statistics dict per channel (with ``num_samples``), None for a channel without samples.
    """
    result: list[dict[str, Any] | None] = []
    for channel in range(num_channels):
        parts = [s[channel] for s in samples if s.shape[1] > 0]
        values = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        stats = intensity_statistics(values)
        if stats is not None:
            stats["num_samples"] = int(values.size)
        result.append(stats)
    return result


def value_range_summary(records: Sequence[dict[str, Any]], num_channels: int) -> list[dict[str, Any]]:
    """Per channel over all cases: overall min, max, and whether all values are integers."""
    result = []
    for channel in range(num_channels):
        ranges = [r["value_range"][channel] for r in records]
        result.append({"min": min(v["min"] for v in ranges), "max": max(v["max"] for v in ranges),
                       "integer": all(v["integer"] for v in ranges)})
    return result


def class_fraction_summary(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean voxel fraction of each class over cases."""
    keys = records[0]["class_fractions"].keys()
    return {k: float(np.mean([r["class_fractions"][k] for r in records])) for k in keys}


def lesion_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per foreground class: component counts per case and the size distribution (percentiles)."""
    result: dict[str, Any] = {}
    for key in records[0]["components"]:
        counts = [r["components"][key]["count"] for r in records]
        sizes = np.asarray([s for r in records for s in r["components"][key]["sizes"]], dtype=np.float64)
        entry: dict[str, Any] = {"total_components": int(sum(counts)),
                                 "median_components_per_case": float(np.median(counts)),
                                 "cases_with_class": int(sum(c > 0 for c in counts))}
        if sizes.size:
            entry["size_min"] = float(sizes.min())
            entry["size_max"] = float(sizes.max())
            for p, value in zip(SIZE_PERCENTILES, np.percentile(sizes, SIZE_PERCENTILES)):
                entry[f"size_p{p:02d}"] = float(value)
        result[key] = entry
    return result
