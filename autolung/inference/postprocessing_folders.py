"""Postprocessing on folders of label maps: determine rules from predictions and references, apply them.

The rules are the ones :mod:`autolung.inference.postprocessing` chooses from cross-validation,
but here for any prediction folder (another model's, an ensemble's) and written as
``postprocessing.json``: ``{"rules": [...], "dice_before": {...}, "dice_after": {...},
"num_cases", "ignore_label"}``. A rules file may also be an ``inference_choice.json``.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autolung.errors import InvalidInputError
from autolung.evaluation.metrics import LabelSpec
from autolung.inference.postprocessing import METHODS, apply_postprocessing, choose_postprocessing
from autolung.progress import ProgressReporter, reporter, track
from autolung.utils.atomic import remove_partial_files, write_json_atomic

logger = logging.getLogger(__name__)

POSTPROCESSING_JSON = "postprocessing.json"


def determine_postprocessing(prediction_folder: str | Path, reference_folder: str | Path,
                             labels: Sequence[LabelSpec] | None = None, ignore_label: int | None = None,
                             output_json: str | Path | None = None) -> dict:
    """Choose per label the component rules that raise the mean Dice of these predictions.

    Args:
        prediction_folder: predicted label maps.
        reference_folder: reference label maps (every prediction needs one; references without
            prediction are not used).
        labels: labels or regions to consider in order; None: every nonzero reference label.
        ignore_label: reference value of unannotated voxels, left out of the Dice.
        output_json: where to write the rules (default ``<prediction_folder>/postprocessing.json``).

    Returns:
        The written description.

    Raises:
        InvalidInputError: unpaired predictions or mismatched grids (naming the file).
    """
    from autolung.evaluation.evaluate import _labels_from, _read_pair, pair_files

    prediction_folder = Path(prediction_folder)
    pairs, _ = pair_files(Path(reference_folder), prediction_folder, allow_missing=True)
    chosen = list(labels) if labels else _labels_from([ref for _, ref, _ in pairs], ignore_label)
    maps = [_read_pair(reference, prediction)[:2] for _, reference, prediction in pairs]
    result = choose_postprocessing(maps, chosen, ignore_label=ignore_label)
    result.update(num_cases=len(pairs), ignore_label=ignore_label)
    target = Path(output_json) if output_json is not None else prediction_folder / POSTPROCESSING_JSON
    write_json_atomic(target, result)
    logger.info("postprocessing for %d cases written to %s: %s", len(pairs), target, result["rules"])
    return result


def load_postprocessing(path: str | Path) -> dict:
    """Rules from a ``postprocessing.json`` or an ``inference_choice.json``, checked.

    Raises:
        InvalidInputError: unreadable file, or rules that are not ``{"label", "method", ...}``
            with a known method.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read postprocessing rules: {exc}", path=path) from None
    if isinstance(payload, dict) and isinstance(payload.get("postprocessing"), dict):
        payload = payload["postprocessing"]
    rules = payload.get("rules") if isinstance(payload, dict) else None
    if not isinstance(rules, list):
        raise InvalidInputError("no 'rules' list (a postprocessing.json or inference_choice.json is expected)",
                                path=path)
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict) or "label" not in rule or rule.get("method") not in METHODS:
            raise InvalidInputError(f"rule {index} must hold 'label' and a 'method' of {METHODS}, got {rule!r}",
                                    path=path)
        if rule["method"] == "min_size" and not isinstance(rule.get("min_size_voxels"), int):
            raise InvalidInputError(f"rule {index} (min_size) needs an integer 'min_size_voxels'", path=path)
    return {"rules": rules}


def apply_postprocessing_folder(input_folder: str | Path, output_folder: str | Path, postprocessing: dict,
                                overwrite: bool = False,
                                progress: ProgressReporter | None = None) -> list[Path]:
    """Apply rules to every label map of a folder; masks keep their format and geometry.

    Args:
        input_folder: label maps.
        output_folder: where the postprocessed maps go (not the input folder).
        postprocessing: ``{"rules": [...]}`` (see :func:`load_postprocessing`).
        overwrite: redo cases whose output exists.
        progress: receives the "postprocess" task, one step per label map (default: nothing).

    Returns:
        The output paths.

    Raises:
        InvalidInputError: the output folder is the input folder, or the input holds no label map.
    """
    from autolung.evaluation.evaluate import _label_files
    from autolung.io.images import read_label, write_image

    input_folder, output_folder = Path(input_folder), Path(output_folder)
    if output_folder.resolve() == input_folder.resolve():
        raise InvalidInputError("the output folder is the input folder (inputs are never overwritten)",
                                path=output_folder)
    files = _label_files(input_folder)
    if not files:
        raise InvalidInputError("no label maps found", path=input_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    remove_partial_files(output_folder)
    written = []
    for case_id, path in track(sorted(files.items()), reporter(progress), "postprocess", len(files)):
        target = output_folder / path.name
        if not target.is_file() or overwrite:
            seg, geometry = read_label(path)
            cleaned = apply_postprocessing(seg, postprocessing)
            small = cleaned.min() >= 0 and cleaned.max() < 256
            write_image(cleaned.astype(np.uint8 if small else np.int32), geometry, target)
        written.append(target)
    logger.info("postprocessed %d label maps into %s", len(written), output_folder)
    return written
