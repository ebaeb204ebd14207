"""Table rows: one per dataset x configuration x class, from the collected dataset results."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from autolung.benchmarking.stats import describe

METRICS = ("dice", "hd95", "nsd")
SPREAD = ("mean", "std", "median", "q1", "q3", "iqr")
BASE_COLUMNS = (
    ["dataset", "configuration", "class", "class_name", "n_cases"]
    + [f"{metric}_{stat}" for metric in METRICS for stat in SPREAD]
    + ["hd95_n_undefined", "lesion_sensitivity", "lesion_fp_per_case", "folds", "training_time_s",
       "training_time_per_fold_s", "inference_s_per_case", "spacing", "patch_size", "batch_size", "num_stages",
       "chosen"]
)


def class_keys(cases: Sequence[dict[str, Any]]) -> list[str]:
    """Class keys in the order the first case lists them (then any others, sorted).

    Args:
        cases: ``[{"case_id", "metrics": {key: {...}}}]``.

    Returns:
        The keys.
    """
    keys: list[str] = []
    for case in cases:
        keys.extend(k for k in case.get("metrics", {}) if k not in keys)
    return keys


def per_case_values(cases: Sequence[dict[str, Any]], key: str, metric: str) -> list[float]:
    """One value per case of one class and metric (NaN where missing or undefined).

    Args:
        cases: per-case metrics.
        key: class key.
        metric: metric name.

    Returns:
        The values in case order.
    """
    values = []
    for case in cases:
        value = case.get("metrics", {}).get(key, {}).get(metric)
        values.append(math.nan if value is None else float(value))
    return values


def _mean_of(values: Sequence[float | None]) -> float:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(finite)) if finite else math.nan


def _timing(folds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    times = [f.get("training_time_s") for f in folds.values()]
    finite = [float(t) for t in times if t is not None]
    return {"folds": " ".join(sorted(folds)), "training_time_s": float(sum(finite)) if finite else math.nan,
            "training_time_per_fold_s": _mean_of(times),
            "inference_s_per_case": _mean_of([f.get("inference_s_per_case") for f in folds.values()])}


def _plan_columns(plan: dict[str, Any]) -> dict[str, Any]:
    return {"spacing": "x".join(f"{s:g}" for s in plan.get("spacing", [])),
            "patch_size": "x".join(str(p) for p in plan.get("patch_size", [])),
            "batch_size": plan.get("batch_size"), "num_stages": plan.get("num_stages")}


def _chosen(result: dict[str, Any], configuration: str) -> bool:
    best = result.get("best") or {}
    return any(entry.get("configuration") == configuration for entry in best.get("configurations", []))


def class_row(result: dict[str, Any], configuration: str, key: str) -> dict[str, Any]:
    """The row of one class of one configuration of one dataset.

    Args:
        result: a dataset result (see :mod:`autolung.benchmarking.collect`).
        configuration: configuration name.
        key: class key.

    Returns:
        The row, keyed by :data:`BASE_COLUMNS`.
    """
    entry = result["configurations"][configuration]
    cases = entry.get("cases", [])
    row: dict[str, Any] = {"dataset": result["dataset"], "configuration": configuration, "class": key,
                           "class_name": result.get("labels", {}).get(key, key), "n_cases": len(cases)}
    for metric in METRICS:
        stats = describe(per_case_values(cases, key, metric))
        row.update({f"{metric}_{stat}": stats[stat] for stat in SPREAD})
        if metric == "hd95":
            row["hd95_n_undefined"] = stats["n_undefined"]
    lesions = entry.get("lesions", {}).get(key, {})
    row["lesion_sensitivity"] = _none_as_nan(lesions.get("lesion_sensitivity"))
    row["lesion_fp_per_case"] = _none_as_nan(lesions.get("fp_per_case"))
    row.update(_timing(entry.get("folds", {})))
    row.update(_plan_columns(entry.get("plan", {})))
    row["chosen"] = _chosen(result, configuration)
    return row


def _none_as_nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def build_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """All rows, datasets and configurations in the given order, classes in evaluation order.

    Args:
        results: dataset results.

    Returns:
        One row per dataset x configuration x class with per-case results.
    """
    rows = []
    for result in results:
        for configuration, entry in result.get("configurations", {}).items():
            for key in class_keys(entry.get("cases", [])):
                rows.append(class_row(result, configuration, key))
    return rows
