"""Synthetic fingerprints: planner rules are tested on exact numbers without reading images.

Not a conftest.py: a second conftest module would shadow ``from conftest import shared_dataset``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def synthetic_fingerprint(spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]],
                          channel_names: Sequence[str] = ("CT",), is_2d: bool = False,
                          relative_crop: float = 1.0, file_ending: str = ".nii.gz",
                          value_range: dict[str, Any] | None = None,
                          lesion_p25: float | None = None) -> dict[str, Any]:
    """A fingerprint dict as ``fingerprint_dataset`` writes it, with the fields planners read.

    ``lesion_p25`` gives the one class a 25th-percentile lesion size (mm² for 2D sets, mm³ otherwise).
    """
    cases = [{"case_id": f"c{i}", "spacing": list(sp), "shape": list(sh), "shape_after_crop": list(sh),
              "relative_size_after_crop": relative_crop} for i, (sp, sh) in enumerate(zip(spacings, shapes))]
    stats = {"mean": -500.0, "std": 200.0, "median": -600.0, "min": -1024.0, "max": 900.0,
             "percentile_00_5": -1000.0, "percentile_99_5": 300.0, "num_samples": 1000}
    lesions = {} if lesion_p25 is None else {
        "component_size_unit": "mm2" if is_2d else "mm3",
        "lesion_sizes": {"1": {"total_components": len(cases), "size_p25": float(lesion_p25)}}}
    return {
        **lesions,
        "fingerprint_version": 1, "dataset_name": "Synthetic", "channel_names": list(channel_names),
        "labels": {"background": 0, "lesion": 1}, "region_mapping": {"regions": [[1]], "paint_labels": [1]},
        "file_ending": file_ending, "is_2d": is_2d, "num_cases": len(cases),
        "file_formats": [file_ending.lstrip(".").split(".")[0]],
        "median_relative_size_after_crop": relative_crop,
        "foreground_intensity": [dict(stats) for _ in channel_names],
        "value_range": [value_range or {"min": -1024.0, "max": 3000.0, "integer": True} for _ in channel_names],
        "cases": cases,
    }

