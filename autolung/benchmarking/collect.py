"""Read what the pipeline left on disk into one JSON-able result per dataset.

The result of a dataset (the input of :mod:`autolung.benchmarking.report`)::

    {"dataset": "Tiny_CT", "labels": {"1": "bright", ...}, "failed": null | {"step", "message"},
     "best": {...inference choice...} | null,
     "configurations": {"3d_fullres": {
         "plan": {"spacing", "patch_size", "batch_size", "num_stages", "features_per_stage", "network"},
         "folds": {"0": {"training_time_s", "epochs", "inference_s_per_case", "num_validation_cases"}},
         "cases": [{"case_id", "metrics": {"1": {"dice", "hd95", "nsd", ...}}}],
         "lesions": {"1": {"lesion_sensitivity", "fp_per_case", ...}}}}}
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from autolung.io.formats import image_ending
from autolung.planning.plans import ConfigurationPlan, Plans
from autolung.results import (
    FINAL_CHECKPOINT,
    LATEST_CHECKPOINT,
    PROGRESS_PLOT_FILE,
    TRAINING_LOG_FILE,
    VALIDATION_FOLDER,
)

# Written by the trainer right before the fold's validation starts.
_END_OF_TRAINING_FILES = (FINAL_CHECKPOINT, LATEST_CHECKPOINT, TRAINING_LOG_FILE, PROGRESS_PLOT_FILE)


def plan_summary(configuration: ConfigurationPlan) -> dict[str, Any]:
    """What the planner chose for one configuration.

    Args:
        configuration: the configuration's plan.

    Returns:
        ``{"spacing", "patch_size", "batch_size", "num_stages", "features_per_stage", "network"}``.
    """
    architecture = configuration.architecture
    return {"spacing": [round(float(s), 4) for s in configuration.spacing],
            "patch_size": [int(p) for p in configuration.patch_size], "batch_size": int(configuration.batch_size),
            "num_stages": int(architecture.num_stages), "features_per_stage": list(architecture.features_per_stage),
            "network": architecture.network}


def label_names(plans: Plans, keys: list[str]) -> dict[str, str]:
    """A readable name per class key: the label's name, or names joined by ``+`` for regions.

    Args:
        plans: the dataset's plans (label name -> value).
        keys: class keys as in evaluation summaries (``"1"``, ``"1+2"``).

    Returns:
        ``{key: name}``.
    """
    by_value = {int(value): name for name, value in plans.labels.items()}
    return {key: "+".join(by_value.get(int(v), v) if v.lstrip("-").isdigit() else v for v in key.split("+"))
            for key in keys}


def read_training_log(fold_folder: Path) -> tuple[float | None, int | None]:
    """Training seconds and epochs of a fold, from its ``training_log.jsonl``.

    Args:
        fold_folder: ``fold_<k>``.

    Returns:
        ``(seconds, epochs)``: the last record's accumulated ``elapsed_s`` (the sum of the
        epoch times when absent) and its epoch; ``(None, None)`` without a log.
    """
    path = fold_folder / TRAINING_LOG_FILE
    if not path.is_file():
        return None, None
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not records:
        return None, None
    last = records[-1]
    seconds = last.get("elapsed_s")
    if seconds is None:
        seconds = sum(float(r.get("epoch_time_s", 0.0)) for r in records)
    return float(seconds), int(last.get("epoch", len(records)))


def validation_predictions(fold_folder: Path) -> list[Path]:
    """The label maps a fold's final validation wrote (not its probabilities or summary).

    Args:
        fold_folder: ``fold_<k>``.

    Returns:
        Sorted paths of ``validation/<case><ending>``.
    """
    folder = fold_folder / VALIDATION_FOLDER
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and image_ending(p) is not None)


def inference_seconds_per_case(fold_folder: Path) -> float | None:
    """Seconds per validation case of the fold's final sliding-window prediction.

    The trainer does not time it, so it is read from file times: the last file written at the end
    of training starts the clock, the last prediction written (label map or ``.npz``) stops it.
    This covers mirroring, restoring to the original grid and writing, as a user's prediction
    would, but not reading or preprocessing the raw image.

    Args:
        fold_folder: ``fold_<k>``.

    Returns:
        Seconds per case, or None when the files are not there.
    """
    predictions = validation_predictions(fold_folder)
    starts = [(fold_folder / name).stat().st_mtime for name in _END_OF_TRAINING_FILES if (fold_folder / name).exists()]
    if not predictions or not starts:
        return None
    written = [p.stat().st_mtime for p in predictions]
    written += [p.stat().st_mtime for p in (fold_folder / VALIDATION_FOLDER).glob("*.npz")]
    seconds = max(written) - max(starts)
    return max(seconds, 0.0) / len(predictions) if math.isfinite(seconds) else None


def fold_summary(fold_folder: Path) -> dict[str, Any]:
    """Timing facts of one trained fold.

    Args:
        fold_folder: ``fold_<k>``.

    Returns:
        ``{"training_time_s", "epochs", "inference_s_per_case", "num_validation_cases"}``.
    """
    seconds, epochs = read_training_log(fold_folder)
    return {"training_time_s": seconds, "epochs": epochs,
            "inference_s_per_case": inference_seconds_per_case(fold_folder),
            "num_validation_cases": len(validation_predictions(fold_folder))}


def read_evaluation(summary_file: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-case metrics and per-class lesion statistics of an ``evaluate_folders`` summary JSON.

    Args:
        summary_file: the JSON written by ``evaluate_folders(..., output_json=...)``.

    Returns:
        ``(cases, lesions)``; empty when the file does not exist.
    """
    if not summary_file.is_file():
        return [], {}
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    return list(summary.get("cases", [])), dict(summary.get("lesions", {}))


def configuration_result(configuration: ConfigurationPlan, fold_folders: dict[str, Path],
                         summary_file: Path) -> dict[str, Any]:
    """Everything reported about one trained configuration of a dataset.

    Args:
        configuration: its plan.
        fold_folders: fold name (``"0"``) -> ``fold_<k>`` folder.
        summary_file: the cross-validation evaluation summary.

    Returns:
        ``{"plan", "folds", "cases", "lesions"}``.
    """
    cases, lesions = read_evaluation(summary_file)
    return {"plan": plan_summary(configuration),
            "folds": {fold: fold_summary(folder) for fold, folder in fold_folders.items()},
            "cases": cases, "lesions": lesions}
