"""Evaluate a folder of predicted label maps against a folder of reference label maps.

Files are paired by case id (the file name without its image ending), so a ``.nrrd`` prediction
can be compared with a ``.nii.gz`` reference. Spacing comes from the reference. A reference case
without a prediction is an error unless ``allow_missing`` is set; the summary then lists the
missing cases (``missing_predictions``).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from autolung.errors import InvalidInputError
from autolung.evaluation.lesions import lesion_metrics, summarise_lesions
from autolung.evaluation.metrics import METRIC_NAMES, LabelSpec, evaluate_case, label_key, label_mask
from autolung.evaluation.report import aggregate, write_cases_csv, write_summary_json
from autolung.io.formats import image_ending, strip_ending
from autolung.labels import mask_ignored
from autolung.progress import ProgressReporter, reporter, track
from autolung.provenance import provenance, read_predictions_record

logger = logging.getLogger(__name__)

__all__ = ["evaluate_case", "evaluate_folders", "pair_files", "summarise"]


def _label_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise InvalidInputError("folder not found", path=folder)
    return {strip_ending(p): p for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and image_ending(p) is not None}


def pair_files(reference_folder: Path | Mapping[str, Path], prediction_folder: Path,
               allow_missing: bool = False) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """``(case_id, reference, prediction)`` for every prediction, and the reference cases without one.

    Args:
        reference_folder: folder of reference label maps, or ``{case_id: reference file}``.
        prediction_folder: folder of predicted label maps.
        allow_missing: accept reference cases that have no prediction (else an error).

    Returns:
        ``(pairs, missing)``: the pairs in case order and the unpredicted reference case ids.

    Raises:
        InvalidInputError: no predictions, a prediction without reference, or (without
            ``allow_missing``) a reference without prediction; each names the cases.
    """
    if isinstance(reference_folder, Mapping):
        references, reference_path = dict(reference_folder), None
    else:
        references, reference_path = _label_files(Path(reference_folder)), Path(reference_folder)
    predictions = _label_files(prediction_folder)
    if not predictions:
        raise InvalidInputError("no predicted label files found", path=prediction_folder)
    unreferenced = sorted(set(predictions) - set(references))
    if unreferenced:
        raise InvalidInputError(f"no reference for predicted cases {_listed(unreferenced)}", path=reference_path)
    missing = sorted(set(references) - set(predictions))
    if missing and not allow_missing:
        raise InvalidInputError(f"{len(missing)} reference case(s) have no prediction: {_listed(missing)}; "
                                "predict them, or set allow_missing to evaluate only the predicted cases",
                                path=prediction_folder)
    if missing:
        logger.warning("%d reference case(s) have no prediction and are not evaluated: %s", len(missing),
                       _listed(missing))
    return [(case_id, references[case_id], predictions[case_id]) for case_id in sorted(predictions)], missing


def _listed(case_ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(case_ids[:limit])
    return shown + (f" and {len(case_ids) - limit} more" if len(case_ids) > limit else "")


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


def _labels_from(references: Sequence[Path], ignore_label: int | None) -> list[int]:
    from autolung.io.images import read_label

    found: set[int] = set()
    for path in references:
        found.update(int(v) for v in np.unique(read_label(path)[0]))
    return sorted(found - {0, ignore_label})


def evaluate_folders(reference_folder: str | Path | Mapping[str, Path], prediction_folder: str | Path,
                     labels: Sequence[LabelSpec] | None = None, tolerance_mm: float = 2.0,
                     output_json: str | Path | None = None, lesion_labels: Sequence[LabelSpec] | None = None,
                     progress: ProgressReporter | None = None, ignore_label: int | None = None,
                     allow_missing: bool = False) -> dict:
    """Evaluate every prediction against its reference; optionally write summary JSON and CSV.

    Args:
        reference_folder: reference label maps, or ``{case_id: reference file}``.
        prediction_folder: predicted label maps (same case ids).
        labels: labels or regions to evaluate; None takes every nonzero label in the references.
        tolerance_mm: NSD tolerance in mm.
        output_json: where to write the summary; the per-case CSV goes beside it as
            ``<stem>_cases.csv``. None writes nothing.
        lesion_labels: labels for lesion-wise metrics; None means every evaluated label.
        progress: receives the "evaluate" task, one step per case (default: nothing).
        ignore_label: reference value of unannotated voxels; they count nowhere.
        allow_missing: evaluate only the predicted cases when some reference cases have no
            prediction (listed in the summary's ``missing_predictions``); else that is an error.

    Returns:
        The summary dict (NaN where undefined; null in the JSON).

    Raises:
        InvalidInputError: unpaired cases (see :func:`pair_files`), or mismatched grids.
    """
    references = reference_folder if isinstance(reference_folder, Mapping) else Path(reference_folder)
    pairs, missing = pair_files(references, Path(prediction_folder), allow_missing)
    labels = list(labels) if labels else _labels_from([ref for _, ref, _ in pairs], ignore_label)
    lesion_labels = labels if lesion_labels is None else list(lesion_labels)
    cases, lesions = [], {label_key(label): [] for label in lesion_labels}
    for case_id, reference, prediction in track(pairs, reporter(progress), "evaluate", len(pairs)):
        ref, pred, spacing = _read_pair(reference, prediction)
        ref, pred = mask_ignored(ref, pred, ignore_label)
        cases.append({"case_id": case_id, "metrics": evaluate_case(ref, pred, spacing, labels, tolerance_mm)})
        for label in lesion_labels:
            lesions[label_key(label)].append(lesion_metrics(label_mask(ref, label), label_mask(pred, label), spacing))
    summary = summarise(cases, labels, tolerance_mm, lesions)
    summary["ignore_label"] = ignore_label
    summary["missing_predictions"] = missing
    summary.update(_prediction_provenance(Path(prediction_folder)))
    if output_json is not None:
        output_json = Path(output_json)
        write_summary_json(output_json, summary)
        write_cases_csv(output_json.with_name(f"{output_json.name.removesuffix('.json')}_cases.csv"),
                        cases)
    return summary
