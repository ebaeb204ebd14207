"""End-of-training validation: the fold's validation cases through the per-case prediction path
that ``predict`` uses (:mod:`autolung.inference.case_prediction`), back to the original image
grid, written as masks and probabilities, then evaluated.

Writes into ``fold_<k>/validation/``: ``<case><file ending>`` (label map), ``<case>.npz``
(float16 probabilities for find_best_configuration) and ``summary.json`` (+ per-case CSV).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autolung.inference.case_prediction import (CaseOptions, model_entry, predict_preprocessed_case,
                                                 prediction_settings, resolve_configuration_levers)
from autolung.paths import DataRoot
from autolung.provenance import PREDICTIONS_RECORD, image_metadata, predictions_record
from autolung.training.options import TrainingOptions
from autolung.utils.atomic import write_json_atomic

logger = logging.getLogger(__name__)

def validate_fold(network: nn.Module, inputs: object, data_root: DataRoot, dataset_name: str,
                  device: torch.device, options: TrainingOptions) -> Path:
    """Predict, restore, write and evaluate the validation cases of a trained fold.

    Args:
        network: the trained (bare) network.
        inputs: the fold's :class:`~autolung.training.run.FoldInputs`.
        data_root: the data root (reference labels come from ``raw/<dataset>/labelsTr``).
        dataset_name: dataset name.
        device: where to predict.
        options: training options (output kind, precision).

    Returns:
        The validation folder.
    """
    from autolung.inference.cv_outputs import save_cv_probabilities
    from autolung.io.geometry import ImageGeometry
    from autolung.io.images import write_image
    from autolung.preprocessing.restore import restore_to_original
    from autolung.preprocessing.storage import PreprocessedDataset

    plans, config = inputs.plans, inputs.configuration
    folder = inputs.folder.validation_folder
    folder.mkdir(parents=True, exist_ok=True)
    network.deep_supervision = False
    network.eval()
    predictor_net = options.output_kind.prediction_network(network)
    dataset = PreprocessedDataset(inputs.case_folder)
    precision = "bfloat16" if _uses_bf16(device, options) else "float32"
    chosen = resolve_configuration_levers(options.validation_mode, device, config)
    case_options = CaseOptions(chosen.levers, device, precision)
    logger.info("final validation of %d case(s), after the training budget: %s", len(inputs.val_cases),
                chosen.explain())
    digest = plans.digest()
    for index, case_id in enumerate(inputs.val_cases):
        data, _, properties = dataset.load(case_id, mmap=True)
        data = np.array(data)
        if getattr(inputs, "previous_stage", None) is not None:
            from autolung.preprocessing.previous_stage import with_previous_stage

            data = with_previous_stage(data, np.load(inputs.previous_stage / f"{case_id}.npy"),
                                       inputs.previous_labels)
        probabilities = predict_preprocessed_case(predictor_net, data, config, case_options)
        restored = restore_to_original(probabilities, properties, config)
        geometry = ImageGeometry.from_json(properties["original_geometry"])
        labels = options.output_kind.label_map(restored, plans.region_mapping)
        write_image(labels, geometry, folder / f"{case_id}{plans.file_ending}", metadata=image_metadata(digest))
        save_cv_probabilities(folder, case_id, restored, geometry, plans.region_mapping)
        logger.info("validation case %d/%d: %s", index + 1, len(inputs.val_cases), case_id)
    model = model_entry(config.name, [inputs.folder.fold], str(inputs.fold_folder), digest,
                        options.validation_checkpoint)
    write_json_atomic(folder / PREDICTIONS_RECORD, predictions_record(
        [model], prediction_settings(chosen, precision, None), list(inputs.val_cases)))
    _evaluate(folder, data_root, dataset_name, plans, list(inputs.val_cases))
    return folder


def _uses_bf16(device: torch.device, options: TrainingOptions) -> bool:
    from autolung.training.hardware import autocast_dtype

    return autocast_dtype(device, options.precision) == torch.bfloat16


def _evaluate(folder: Path, data_root: DataRoot, dataset_name: str, plans: object, case_ids: list[str]) -> None:
    from autolung.evaluation.evaluate import evaluate_folders
    from autolung.inference.best_configuration import evaluation_labels, reference_files

    raw_folder = data_root.raw_dataset_folder(dataset_name)
    references = reference_files(raw_folder, required=False)
    absent = [case for case in case_ids if case not in references]
    if absent:
        logger.warning("no reference labels for validation case(s) %s in %s; validation predictions written "
                       "but not evaluated", ", ".join(absent[:10]), raw_folder)
        return
    summary = evaluate_folders({case: references[case] for case in case_ids}, folder,
                               labels=evaluation_labels(plans.region_mapping), output_json=folder / "summary.json",
                               ignore_label=plans.region_mapping.ignore_label)
    mean = summary.get("mean") if isinstance(summary, dict) else None
    logger.info("validation summary written to %s%s", folder / "summary.json",
                f": {json.dumps(mean)[:300]}" if mean else "")
