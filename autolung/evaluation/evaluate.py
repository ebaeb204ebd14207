"""Evaluate a folder of predicted label maps against a folder of reference label maps.

Files are paired by case id (the file name without its image ending), so a ``.nrrd`` prediction
can be compared with a ``.nii.gz`` reference. Spacing comes from the reference.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from autolung.errors import InvalidInputError
from autolung.evaluation.lesions import lesion_metrics, summarise_lesions
from autolung.evaluation.metrics import METRIC_NAMES, LabelSpec, evaluate_case, label_key, label_mask
from autolung.evaluation.report import aggregate, write_cases_csv, write_summary_json
from autolung.io.formats import image_ending, strip_ending
from autolung.provenance import provenance, read_predictions_record

logger = logging.getLogger(__name__)

__all__ = ["evaluate_case", "evaluate_folders", "pair_files", "summarise"]


def _label_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise InvalidInputError("folder not found", path=folder)
    return {strip_ending(p): p for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and image_ending(p) is not None}


def pair_files(reference_folder: Path, prediction_folder: Path) -> list[tuple[str, Path, Path]]:
    """``(case_id, reference, prediction)`` for every prediction; each needs a reference.

    Raises:
        InvalidInputError: no predictions, or a prediction without reference.
    """
    references = _label_files(reference_folder)
    predictions = _label_files(prediction_folder)
    if not predictions:
        raise InvalidInputError("no predicted label files found", path=prediction_folder)
    missing = sorted(set(predictions) - set(references))
    if missing:
        raise InvalidInputError(f"no reference for predicted cases {missing[:5]}", path=reference_folder)
    unpredicted = len(set(references) - set(predictions))
    if unpredicted:
        logger.info("%d reference cases have no prediction and are not evaluated", unpredicted)
    return [(case_id, references[case_id], predictions[case_id]) for case_id in sorted(predictions)]


def _read_pair(reference: Path, prediction: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    from autolung.io.images import read_label

    ref, ref_geometry = read_label(reference)
    pred, pred_geometry = read_label(prediction)
    if tuple(ref.shape) != tuple(pred.shape):
        raise InvalidInputError(f"shape {tuple(pred.shape)} differs from the reference's {tuple(ref.shape)}",
                                path=prediction)
    if not np.allclose(ref_geometry.spacing, pred_geometry.spacing, rtol=1e-3, atol=1e-4):
        raise InvalidInputError(f"spacing {pred_geometry.spacing} differs from the reference's "
                                f"{ref_geometry.spacing}", path=prediction)
    return ref, pred, tuple(ref_geometry.spacing)


def summarise(cases: Sequence[dict], labels: Sequence[LabelSpec], tolerance_mm: float,
              lesions: dict[str, list[dict]] | None = None) -> dict:
    """Dataset summary: mean/std/median per class and metric, mean foreground Dice, lesion stats.

    Args:
        cases: ``[{"case_id", "metrics": {label: {metric: value}}}]``.
        labels: the evaluated labels or regions.
        tolerance_mm: NSD tolerance used.
        lesions: per class, the lesion metrics of every case.

    Returns:
        The summary dict (the JSON written by :func:`evaluate_folders`).
    """
    keys = [label_key(label) for label in labels]
    per_class = {key: {name: aggregate([c["metrics"][key][name] for c in cases]) for name in METRIC_NAMES}
                 for key in keys}
    class_means = [per_class[key]["dice"]["mean"] for key in keys]
    finite = [v for v in class_means if np.isfinite(v)]
    return {"num_cases": len(cases), "labels": keys, "tolerance_mm": tolerance_mm,
            "mean_foreground_dice": float(np.mean(finite)) if finite else float("nan"),
            "per_class": per_class,
            "lesions": {key: summarise_lesions(items) for key, items in (lesions or {}).items()},
            "cases": list(cases)}


def _prediction_provenance(prediction_folder: Path) -> dict:
    """This autolung's version, and the plans digest the predictions were made with (None when
    the folder has no ``autolung_predictions.json``, e.g. masks from another tool)."""
    record = read_predictions_record(prediction_folder)
    found = provenance(record.get("plans_digest") if record else None)
    return {"autolung_version": found["autolung_version"], "plans_digest": found["plans_digest"],
            "predictions_autolung_version": record.get("autolung_version") if record else None}


def _labels_from(references: Sequence[Path]) -> list[int]:
    from autolung.io.images import read_label

    found: set[int] = set()
    for path in references:
        found.update(int(v) for v in np.unique(read_label(path)[0]))
    return sorted(found - {0})


def evaluate_folders(reference_folder: str | Path, prediction_folder: str | Path,
                     labels: Sequence[LabelSpec] | None = None, tolerance_mm: float = 2.0,
                     output_json: str | Path | None = None, lesion_labels: Sequence[LabelSpec] | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict:
    """Evaluate every prediction against its reference; optionally write summary JSON and CSV.

    Args:
        reference_folder: reference label maps.
        prediction_folder: predicted label maps (same case ids).
        labels: labels or regions to evaluate; None takes every nonzero label in the references.
        tolerance_mm: NSD tolerance in mm.
        output_json: where to write the summary; the per-case CSV goes beside it as
            ``<stem>_cases.csv``. None writes nothing.
        lesion_labels: labels for lesion-wise metrics; None means every evaluated label.
        progress: optional ``progress(done, total)`` callback.

    Returns:
        The summary dict (NaN where undefined; null in the JSON).
    """
    pairs = pair_files(Path(reference_folder), Path(prediction_folder))
    labels = list(labels) if labels else _labels_from([ref for _, ref, _ in pairs])
    lesion_labels = labels if lesion_labels is None else list(lesion_labels)
    cases, lesions = [], {label_key(label): [] for label in lesion_labels}
    for index, (case_id, reference, prediction) in enumerate(pairs):
        ref, pred, spacing = _read_pair(reference, prediction)
        cases.append({"case_id": case_id, "metrics": evaluate_case(ref, pred, spacing, labels, tolerance_mm)})
        for label in lesion_labels:
            lesions[label_key(label)].append(lesion_metrics(label_mask(ref, label), label_mask(pred, label), spacing))
        if progress is not None:
            progress(index + 1, len(pairs))
    summary = summarise(cases, labels, tolerance_mm, lesions)
    summary.update(_prediction_provenance(Path(prediction_folder)))
    if output_json is not None:
        output_json = Path(output_json)
        write_summary_json(output_json, summary)
        write_cases_csv(output_json.with_name(f"{output_json.name.removesuffix('.json')}_cases.csv"),
                        cases)
    return summary
