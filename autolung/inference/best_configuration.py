"""Choose the configuration (or pairwise ensemble) and postprocessing from cross-validation.

For every trained configuration folder ``results/<ds>/<config>__<planner>`` the folds'
``fold_<k>/validation/<case>.npz`` probabilities are gathered (each case is validated in exactly
one fold; fold ``all`` is left out: its "validation" cases are its own training cases). As in
nnU-Net, the cross-validation must be complete: every labelled case predicted by every
configuration, by one fold only. ``allow_partial`` accepts a partial one (the choice records it). Each configuration and each pair of configurations (probabilities averaged) is scored
by mean foreground Dice against the raw labels (``raw/<ds>/labelsTr``) on the cases every
configuration predicted. The best candidate then gets postprocessing chosen per class
(:func:`choose_postprocessing`), and ``results/<ds>/inference_choice.json`` records it all:

    {"dataset_name", "configurations": [{"folder", "configuration", "planner", "folds"}],
     "postprocessing": {"rules": [...]}, "mean_foreground_dice", "mean_foreground_dice_postprocessed",
     "candidates": {"<name>": mean Dice}, "num_cases"}
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autolung.errors import InvalidInputError
from autolung.evaluation.metrics import LabelSpec, label_mask, overlap_metrics
from autolung.inference.case_prediction import probabilities_to_labels
from autolung.inference.cv_outputs import list_saved_cases, load_cv_probabilities
from autolung.inference.model import available_folds
from autolung.inference.postprocessing import choose_postprocessing
from autolung.labels import RegionMapping, mask_ignored
from autolung.paths import DataRoot
from autolung.planning.plans import Plans
from autolung.provenance import provenance
from autolung.results import FOLD_ALL, FoldFolder, fold_folders
from autolung.utils.atomic import write_json_atomic

logger = logging.getLogger(__name__)

CHOICE_FILE = "inference_choice.json"
ENSEMBLE_SEPARATOR = "+"


def cv_probability_files(configuration_folder: Path) -> dict[str, Path]:
    """``{case_id: npz}`` over the numbered folds' ``validation`` folders of one configuration.

    Fold ``all`` is skipped: it trained on every case, so its validation predictions are of
    cases it has seen.

    Raises:
        InvalidInputError: when two folds predicted the same case (overlapping splits, or
            folds trained with different splits), naming the case and the folds.
    """
    found: dict[str, Path] = {}
    for fold_folder in fold_folders(configuration_folder, numbered_only=True):
        for case_id, path in list_saved_cases(fold_folder.validation_folder).items():
            if case_id in found:
                raise InvalidInputError(
                    f"case {case_id!r} was validated by both {found[case_id].parent.parent.name} and "
                    f"{fold_folder.path.name}: the folds do not come from one cross-validation split",
                    path=configuration_folder)
            found[case_id] = path
    return found


def trained_configurations(results_dataset: Path, names: Sequence[str] | None = None) -> dict[str, dict[str, Path]]:
    """Configuration folder name -> its CV probability files, for folders that have some.

    Args:
        results_dataset: ``results/<ds>``.
        names: configuration names ("3d_fullres") or folder names ("3d_fullres__default");
            None takes every folder with cross-validation probabilities.
    """
    folders = sorted(p for p in results_dataset.glob("*__*") if p.is_dir())
    if names:
        folders = [f for f in folders if f.name in names or f.name.split("__")[0] in names]
    found = {f.name: cv_probability_files(f) for f in folders}
    found = {name: files for name, files in found.items() if files}
    if not found:
        only_all = any(FoldFolder.of(f, FOLD_ALL).path.is_dir() for f in folders)
        raise InvalidInputError("no trained configuration with cross-validation probabilities "
                                "(fold_<k>/validation/<case>.npz) found"
                                + ("; fold all has no cross-validation to choose from: predict with its "
                                   "configuration and folds=['all'] directly" if only_all else ""),
                                path=results_dataset)
    return found


def reference_files(raw_dataset: Path, required: bool = True) -> dict[str, Path]:
    """``{case_id: label file}`` of the raw dataset, read through its own layout (Decathlon, nnU-Net
    v1 or v2, explicit file lists), so case ids match the ones used in training.

    Args:
        raw_dataset: the raw dataset folder.
        required: raise when it is missing or has no label file; else return ``{}`` then.

    Raises:
        InvalidInputError: (with ``required``) no dataset there, or no label file.
    """
    from autolung.dataset.layout import load_dataset
    from autolung.io.formats import image_ending, strip_ending

    if not (raw_dataset / "dataset.json").is_file() and (raw_dataset / "labelsTr").is_dir():
        # A bare labelsTr folder (no dataset.json): label files named by case id.
        return {strip_ending(p): p for p in (raw_dataset / "labelsTr").iterdir()
                if p.is_file() and not p.name.startswith(".") and image_ending(p) is not None}
    try:
        spec = load_dataset(raw_dataset, strict=False)
    except InvalidInputError:
        if required:
            raise
        return {}
    found = {case.case_id: case.label for case in spec.cases if case.label is not None and case.label.is_file()}
    if not found and required:
        raise InvalidInputError("the dataset has no label files", path=raw_dataset)
    return found


def evaluation_labels(mapping: RegionMapping) -> list[LabelSpec]:
    """Labels for disjoint mappings, regions (label tuples) for nested ones."""
    if mapping.is_disjoint:
        return [int(v) for v in mapping.paint_labels]
    return [tuple(region) for region in mapping.regions]


def _dice_per_label(ref: np.ndarray, pred: np.ndarray, labels: Sequence[LabelSpec],
                    ignore_label: int | None) -> list[float]:
    ref, pred = mask_ignored(ref, pred, ignore_label)
    return [overlap_metrics(label_mask(ref, label), label_mask(pred, label))["dice"] for label in labels]


def _mean_over_labels(per_case: list[list[float]]) -> float:
    """Mean over labels of the mean over cases, each leaving out undefined (both empty) cases."""
    values = np.asarray(per_case, dtype=np.float64)
    with np.errstate(all="ignore"):
        per_label = [float(np.mean(column[np.isfinite(column)])) if np.isfinite(column).any() else np.nan
                     for column in values.T]
    finite = [v for v in per_label if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _candidate_names(configurations: Sequence[str]) -> list[tuple[str, ...]]:
    singles = [(name,) for name in configurations]
    return singles + list(itertools.combinations(configurations, 2))


def _candidate_labels(case_files: dict[str, Path], members: tuple[str, ...]) -> tuple[np.ndarray, RegionMapping]:
    total, mapping = None, None
    for name in members:
        saved = load_cv_probabilities(case_files[name])
        total = saved.probabilities if total is None else total + saved.probabilities
        mapping = saved.region_mapping
    assert total is not None and mapping is not None
    return probabilities_to_labels(total / len(members), mapping), mapping


def _score_candidates(files: dict[str, dict[str, Path]], references: dict[str, Path], cases: list[str],
                      candidates: list[tuple[str, ...]]) -> tuple[dict[tuple[str, ...], float], list[LabelSpec]]:
    """Mean foreground Dice (mean over labels of the mean over cases) of every candidate."""
    from autolung.io.images import read_label

    scores: dict[tuple[str, ...], list[list[float]]] = {c: [] for c in candidates}
    labels: list[LabelSpec] = []
    for case_id in cases:
        ref, _ = read_label(references[case_id])
        case_files = {name: files[name][case_id] for name in files}
        for candidate in candidates:
            pred, mapping = _candidate_labels(case_files, candidate)
            labels = evaluation_labels(mapping)
            scores[candidate].append(_dice_per_label(ref, pred, labels, mapping.ignore_label))
    return {c: _mean_over_labels(v) for c, v in scores.items()}, labels


def _configuration_entry(results_dataset: Path, folder_name: str) -> dict:
    configuration, _, planner = folder_name.partition("__")
    plans_file = results_dataset / folder_name / "plans.json"
    return {"folder": folder_name, "configuration": configuration, "planner": planner,
            "folds": available_folds(results_dataset / folder_name),
            "plans_digest": Plans.load(plans_file).digest() if plans_file.is_file() else None}


def _unpredicted(files: dict[str, dict[str, Path]], references: dict[str, Path]) -> dict[str, list[str]]:
    """Per configuration, the labelled cases its cross-validation did not predict."""
    return {name: sorted(set(references) - set(found)) for name, found in files.items()
            if set(references) - set(found)}


def _missing_folds(data_root: DataRoot, dataset_name: str, results_dataset: Path,
                   names: Sequence[str]) -> dict[str, list[int]]:
    """Per configuration, the folds of ``splits.json`` without validation probabilities."""
    import json

    splits_file = data_root.splits_file(dataset_name)
    try:
        num_folds = len(json.loads(splits_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return {}
    missing = {}
    for name in names:
        absent = [k for k in range(num_folds)
                  if not list_saved_cases(FoldFolder.of(results_dataset / name, k).validation_folder)]
        if absent:
            missing[name] = absent
    return missing


def _check_complete(files: dict[str, dict[str, Path]], references: dict[str, Path], missing_folds: dict[str, list[int]],
                    allow_partial: bool, results_dataset: Path) -> dict | None:
    """Refuse an incomplete cross-validation unless ``allow_partial``; describe a partial one."""
    unpredicted = _unpredicted(files, references)
    if not unpredicted and not missing_folds:
        return None
    details = "; ".join(
        f"{name}: " + ", ".join(filter(None, [
            f"folds {missing_folds[name]} missing" if name in missing_folds else "",
            f"{len(unpredicted.get(name, []))} labelled case(s) not predicted ({', '.join(unpredicted[name][:5])}"
            f"{' ...' if len(unpredicted[name]) > 5 else ''})" if name in unpredicted else ""]))
        for name in sorted(set(unpredicted) | set(missing_folds)))
    if not allow_partial:
        raise InvalidInputError(f"incomplete cross-validation: {details}; train and validate every fold, "
                                "or set allow_partial to choose from the cases predicted", path=results_dataset)
    logger.warning("choosing from a partial cross-validation: %s", details)
    return {"missing_folds": missing_folds, "unpredicted_cases": unpredicted}


def find_best_configuration(data_root: DataRoot, dataset_name: str,
                            configurations: Sequence[str] | None = None, allow_ensembles: bool = True,
                            allow_partial: bool = False) -> dict:
    """Pick the best configuration or pair and its postprocessing; write ``inference_choice.json``.

    Args:
        data_root: the data root.
        dataset_name: dataset folder name.
        configurations: names to consider; None: every configuration with CV probabilities.
        allow_ensembles: also score pairwise ensembles.
        allow_partial: accept a cross-validation that misses folds or labelled cases; the choice
            is made on the cases every configuration predicted and records ``"partial"``.

    Returns:
        The written choice.

    Raises:
        InvalidInputError: no cross-validation, a case validated by two folds, or (without
            ``allow_partial``) an incomplete cross-validation, naming what is missing.
    """
    results_dataset = data_root.results_dataset(dataset_name)
    files = trained_configurations(results_dataset, configurations)
    references = reference_files(data_root.raw_dataset_folder(dataset_name))
    partial = _check_complete(files, references, _missing_folds(data_root, dataset_name, results_dataset, list(files)),
                              allow_partial, results_dataset)
    cases = sorted(set.intersection(*(set(f) for f in files.values())) & set(references))
    if not cases:
        raise InvalidInputError("no case has CV probabilities from every configuration and a reference",
                                path=results_dataset)
    candidates = _candidate_names(sorted(files)) if allow_ensembles else [(n,) for n in sorted(files)]
    scores, labels = _score_candidates(files, references, cases, candidates)
    best = max(candidates, key=lambda c: (scores[c], -len(c)))
    logger.info("best candidate %s (mean foreground Dice %.4f)", ENSEMBLE_SEPARATOR.join(best), scores[best])
    postprocessing = _choose_postprocessing(files, references, cases, best, labels)
    choice = {"dataset_name": dataset_name,
              "configurations": [_configuration_entry(results_dataset, name) for name in best],
              "postprocessing": {"rules": postprocessing["rules"]},
              "mean_foreground_dice": scores[best],
              "mean_foreground_dice_postprocessed": float(np.mean(list(postprocessing["dice_after"].values()))),
              "candidates": {ENSEMBLE_SEPARATOR.join(c): s for c, s in scores.items()},
              "num_cases": len(cases), "cross_validation": "partial" if partial else "complete"}
    if partial:
        choice["partial"] = partial
    choice.update(provenance([entry["plans_digest"] for entry in choice["configurations"]
                              if entry["plans_digest"]] or None))
    write_json_atomic(results_dataset / CHOICE_FILE, choice)
    return choice


def _choose_postprocessing(files: dict[str, dict[str, Path]], references: dict[str, Path], cases: list[str],
                           best: tuple[str, ...], labels: list[LabelSpec]) -> dict:
    from autolung.io.images import read_label

    pairs, ignore_label = [], None
    for case_id in cases:
        pred, mapping = _candidate_labels({name: files[name][case_id] for name in best}, best)
        pairs.append((read_label(references[case_id])[0], pred))
        ignore_label = mapping.ignore_label
    return choose_postprocessing(pairs, labels, ignore_label=ignore_label)


def load_inference_choice(data_root: DataRoot, dataset_name: str) -> dict:
    """Read ``results/<ds>/inference_choice.json``.

    Raises:
        InvalidInputError: when it does not exist (run find_best_configuration, or give ``configurations``).
    """
    import json

    path = data_root.results_dataset(dataset_name) / CHOICE_FILE
    if not path.is_file():
        raise InvalidInputError("no inference choice yet; run find_best_configuration, or give `configurations`",
                                path=path)
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = ["find_best_configuration", "load_inference_choice", "CHOICE_FILE"]
