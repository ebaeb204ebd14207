"""Training a cascade stage: the previous stage's cross-validation predictions as extra inputs.

Every case of a cascade fold (training and validation) needs the previous stage's prediction
made by the fold that did not train on it, i.e. the previous configuration's
``fold_<k>/validation/<case><ending>`` over all its numbered folds (nnU-Net uses the same
predictions). They are brought onto the preprocessed grid once per training run and stored as
``<fold folder>/previous_stage/<case>.npy`` (int8), which the batch builder one-hot encodes.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autolung.errors import AutolungError
from autolung.paths import DataRoot
from autolung.planning.plans import ConfigurationPlan, Plans
from autolung.preprocessing.previous_stage import previous_stage_on_grid
from autolung.preprocessing.storage import PreprocessedDataset
from autolung.results import FoldFolder, fold_folders
from autolung.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

def previous_predictions(previous_folder: Path, file_ending: str) -> dict[str, Path]:
    """``{case_id: label file}`` over the numbered folds' ``validation`` folders of a configuration."""
    found: dict[str, Path] = {}
    # Fold all is left out: it trained on every case, so its predictions are of cases it has seen.
    for fold_folder in fold_folders(previous_folder, numbered_only=True):
        for path in sorted(fold_folder.validation_folder.glob(f"*{file_ending}")):
            found.setdefault(path.name[:-len(file_ending)], path)
    return found


def _folds_of(cases: Sequence[str], splits_file: Path) -> list[int]:
    """The cross-validation folds whose validation holds ``cases``."""
    try:
        splits = json.loads(splits_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return sorted({k for k, split in enumerate(splits) for case in cases if case in split.get("val", [])})


def prepare_previous_stage(data_root: DataRoot, dataset_name: str, plans: Plans, configuration: ConfigurationPlan,
                           planner: str, case_folder: Path, case_ids: Sequence[str], fold_folder: FoldFolder) -> Path:
    """Bring the previous stage's predictions of ``case_ids`` onto the preprocessed grid.

    Args:
        data_root: the data root.
        dataset_name: the dataset.
        plans: its plans.
        configuration: the cascade configuration (``previous_stage`` set).
        planner: the planner name (selects the previous stage's results folder).
        case_folder: the preprocessed cases the cascade trains on.
        case_ids: the fold's training and validation cases.
        fold_folder: the cascade fold folder; the arrays go to its ``previous_stage/``.

    Returns:
        The folder of ``<case>.npy`` arrays.

    Raises:
        AutolungError: a case without a previous-stage prediction, naming the folder and the
            folds to train first.
    """
    previous = str(configuration.previous_stage)
    previous_folder = data_root.training_output(dataset_name, previous, planner)
    predictions = previous_predictions(previous_folder, plans.file_ending)
    missing = [case for case in case_ids if case not in predictions]
    if missing:
        folds = _folds_of(missing, data_root.splits_file(dataset_name))
        what = f"folds {', '.join(map(str, folds))}" if folds else "every fold"
        raise AutolungError(
            f"{configuration.name} trains on the {previous} cross-validation predictions, and "
            f"{len(missing)} case(s) have none ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}) in "
            f"fold_<k>/validation/: train {previous} {what} (with the final validation) first",
            path=previous_folder)
    from autolung.io.images import read_label

    target = fold_folder.previous_stage_folder
    target.mkdir(parents=True, exist_ok=True)
    dataset = PreprocessedDataset(case_folder)
    for case_id in case_ids:
        _, _, properties = dataset.load(case_id, mmap=True)
        label_map, _ = read_label(predictions[case_id])
        try:
            on_grid = previous_stage_on_grid(label_map, properties, configuration)
        except ValueError as exc:
            raise AutolungError(f"{exc}: the {previous} prediction does not belong to this case",
                                path=predictions[case_id]) from None
        with atomic_path(target / f"{case_id}.npy") as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, on_grid)
    logger.info("%s: %d %s predictions from %s on the training grid", configuration.name, len(case_ids), previous,
                previous_folder)
    return target
