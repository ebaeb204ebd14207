"""Ensembling saved probabilities of several configurations into label maps.

Input folders hold ``<case>.npz`` files (:mod:`autolung.inference.cv_outputs`), written by
``predict --save-probabilities`` or by training's cross-validation. Every folder must hold the
same cases with the same geometry and region mapping.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from autolung.errors import InvalidInputError
from autolung.inference.cv_outputs import SavedProbabilities, list_saved_cases, load_cv_probabilities
from autolung.inference.postprocessing import apply_postprocessing
from autolung.provenance import PREDICTIONS_RECORD, image_metadata, predictions_record, read_predictions_record
from autolung.utils.atomic import remove_partial_files, write_json_atomic

logger = logging.getLogger(__name__)


def average_probabilities(paths: Sequence[Path]) -> SavedProbabilities:
    """Mean of the saved probabilities of one case over several files (float32 accumulation).

    Raises:
        InvalidInputError: when geometry or region mapping differ between files.
    """
    first = load_cv_probabilities(paths[0])
    total = first.probabilities
    for path in paths[1:]:
        other = load_cv_probabilities(path)
        if other.probabilities.shape != total.shape or other.geometry.shape != first.geometry.shape:
            raise InvalidInputError(f"shape {other.probabilities.shape} differs from {paths[0]}", path=path)
        if other.region_mapping != first.region_mapping:
            raise InvalidInputError(f"region mapping differs from {paths[0]}", path=path)
        total += other.probabilities
        del other
    total /= len(paths)
    return SavedProbabilities(first.case_id, total, first.geometry, first.region_mapping)


def common_cases(folders: Sequence[Path]) -> dict[str, list[Path]]:
    """``{case_id: [path per folder]}``; every folder must hold exactly the same cases.

    Raises:
        InvalidInputError: a folder without probabilities, or differing case sets.
    """
    listings = [list_saved_cases(folder) for folder in folders]
    for folder, listing in zip(folders, listings):
        if not listing:
            raise InvalidInputError("no saved probabilities (<case>.npz) found", path=folder)
    first = set(listings[0])
    for folder, listing in zip(folders[1:], listings[1:]):
        if set(listing) != first:
            difference = sorted(first.symmetric_difference(listing))
            raise InvalidInputError(f"holds different cases than {folders[0]} (e.g. {difference[:5]})", path=folder)
    return {case: [listing[case] for listing in listings] for case in sorted(first)}


def ensemble_folders(input_folders: Sequence[str | Path], output_folder: str | Path,
                     output_ending: str | None = None, postprocessing: dict | None = None,
                     save_probabilities: bool = False, overwrite: bool = False) -> list[Path]:
    """Average the probabilities of several folders and write one mask per case.

    Args:
        input_folders: folders of ``<case>.npz``.
        output_folder: where masks go (may not be an input folder).
        output_ending: mask ending; None: the format the original image had (DICOM -> NIfTI).
        postprocessing: optional rules applied to the label maps.
        save_probabilities: also save the averaged probabilities.
        overwrite: redo cases whose mask exists.

    Returns:
        Written (or already present) mask paths.
    """
    from autolung.inference.case_prediction import probabilities_to_labels
    from autolung.inference.cv_outputs import save_cv_probabilities
    from autolung.io.formats import write_ending_for
    from autolung.io.images import write_image

    folders = [Path(f) for f in input_folders]
    output_folder = Path(output_folder)
    if any(output_folder.resolve() == f.resolve() for f in folders):
        raise InvalidInputError("the output folder is one of the input folders", path=output_folder)
    cases = common_cases(folders)
    output_folder.mkdir(parents=True, exist_ok=True)
    remove_partial_files(output_folder)
    sources = ensembled_models(folders)
    metadata = image_metadata([m["plans_digest"] for m in sources if m.get("plans_digest")] or None)
    written, done = [], []
    for case_id, paths in cases.items():
        averaged = average_probabilities(paths)
        ending = output_ending or write_ending_for(averaged.geometry.file_format)
        mask_path = output_folder / f"{case_id}{ending}"
        if mask_path.is_file() and not overwrite:
            written.append(mask_path)
            continue
        if save_probabilities:
            save_cv_probabilities(output_folder, case_id, averaged.probabilities, averaged.geometry,
                                  averaged.region_mapping)
        seg = apply_postprocessing(probabilities_to_labels(averaged.probabilities, averaged.region_mapping),
                                   postprocessing)
        written.append(write_image(seg, averaged.geometry, mask_path, metadata=metadata))
        done.append(case_id)
        logger.info("%s: ensembled %d inputs -> %s", case_id, len(paths), mask_path)
    if done:
        record = predictions_record(sources, {"ensemble_of": [str(f) for f in folders],
                                              "postprocessing": postprocessing},
                                    done, read_predictions_record(output_folder))
        write_json_atomic(output_folder / PREDICTIONS_RECORD, record)
    return written


def ensembled_models(folders: Sequence[Path]) -> list[dict]:
    """The models behind each input folder, from its ``autolung_predictions.json`` when present."""
    models: list[dict] = []
    for folder in folders:
        record = read_predictions_record(folder)
        found = record.get("models") if record else None
        if isinstance(found, list) and found:
            models.extend(m for m in found if isinstance(m, dict))
        else:
            models.append({"source": str(folder), "plans_digest": None})
    return models
