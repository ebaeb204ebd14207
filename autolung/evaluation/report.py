"""Evaluation outputs: summary JSON (NaN as null), per-case CSV, and the summary as table rows (drawn by the CLI)."""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autolung.utils.atomic import write_json_atomic, write_text_atomic

TABLE_METRICS = ("dice", "iou", "hd95", "nsd", "precision", "recall", "volume_diff_ml")


def aggregate(values: Sequence[float]) -> dict[str, float]:
    """Mean, std, median over the finite values, and how many were NaN (undefined) or infinite."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return {"mean": math.nan, "std": math.nan, "median": math.nan, "n": 0,
                "n_undefined": int(array.size)}
    return {"mean": float(finite.mean()), "std": float(finite.std()), "median": float(np.median(finite)),
            "n": int(finite.size), "n_undefined": int(array.size - finite.size)}


def json_safe(value: Any) -> Any:
    """Replace NaN and infinities with None (JSON has no such numbers), recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_summary_json(path: str | Path, summary: dict) -> None:
    """Write the summary atomically, NaN as null."""
    write_json_atomic(path, json_safe(summary))


def write_cases_csv(path: str | Path, cases: Sequence[dict]) -> None:
    """One row per case and class: case_id, label, then every metric (empty for NaN).

    Args:
        path: target CSV.
        cases: ``[{"case_id": ..., "metrics": {label: {metric: value}}}]``.
    """
    buffer = io.StringIO()
    writer = None
    for case in cases:
        for label, metrics in case["metrics"].items():
            if writer is None:
                writer = csv.DictWriter(buffer, fieldnames=["case_id", "label", *metrics])
                writer.writeheader()
            row = {k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
            writer.writerow({"case_id": case["case_id"], "label": label, **row})
    write_text_atomic(path, buffer.getvalue())


def _cell(stats: dict[str, float]) -> str:
    if not math.isfinite(stats["mean"]):
        return "n/a"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


@dataclass(frozen=True)
class SummaryTable:
    """The evaluation summary as rows of text, for a caller to draw.

    Attributes:
        title: what was evaluated ("<n> cases, NSD tolerance <t> mm").
        columns: column headers; the first is the class, the others are right-aligned numbers.
        rows: one row per class, cells formatted (mean ± std, or "n/a").
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def summary_table(summary: dict) -> SummaryTable:
    """One row per class (mean ± std), plus lesion statistics when present."""
    lesions = summary.get("lesions", {})
    columns = ["class", *TABLE_METRICS]
    if lesions:
        columns += ["lesion sens.", "FP/case"]
    rows = []
    for label, stats in summary["per_class"].items():
        row = [label, *(_cell(stats[name]) for name in TABLE_METRICS)]
        if lesions:
            lesion = lesions.get(label, {})
            row += [_fmt(lesion.get("lesion_sensitivity")), _fmt(lesion.get("fp_per_case"))]
        rows.append(tuple(row))
    return SummaryTable(title=f"{summary['num_cases']} cases, NSD tolerance {summary['tolerance_mm']} mm",
                        columns=tuple(columns), rows=tuple(rows))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"
