"""``predict_paths``'s case loop with preprocessing and export overlapping the network
(``PredictionOptions.preprocessing_workers`` / ``export_workers``; see ``pipeline.py``).

Per case, the same steps and files as the serial loop in ``predictor.py``: the case lock is taken
when the case is prepared and released once its mask and provenance record are written; a
finished case is skipped; a case another process holds is left to it.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autolung.inference import predictor as p
from autolung.inference.inputs import InputCase, read_input_case
from autolung.inference.model import TrainedModel
from autolung.inference.pipeline import CaseStages, run_stages
from autolung.io.geometry import ImageGeometry

logger = logging.getLogger(__name__)


@dataclass
class _Prepared:
    """A case read (and, for one plain model, preprocessed) ahead of the network."""

    case: InputCase
    lock: contextlib.ExitStack
    geometry: ImageGeometry
    image: np.ndarray | None = None
    data: np.ndarray | torch.Tensor | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    back: list[int] | None = None


class _PredictionStages(CaseStages[InputCase, _Prepared]):
    def __init__(self, output_folder: Path, models: Sequence[TrainedModel], options: p.PredictionOptions,
                 progress: p.PredictionProgress | None) -> None:
        self.output_folder, self.models, self.options, self.progress = output_folder, models, options, progress
        self.skipped: dict[str, Path | None] = {}
        model = models[0]
        # One model without saved probabilities is preprocessed ahead; a cascade runs its first
        # stage's network while preparing, which stays in the network's thread.
        self.preprocess_ahead = len(models) == 1 and not options.save_probabilities and model.previous_stage is None

    def case_id(self, case: InputCase) -> str:
        return case.case_id

    def prepare(self, case: InputCase) -> _Prepared | None:
        lock, finished = p.claim_case(case, self.output_folder, self.options)
        if lock is None:
            self.skipped[case.case_id] = finished
            return None
        try:
            image, geometry = read_input_case(case, len(self.models[0].plans.channel_names))
            prepared = _Prepared(case, lock, geometry, image=image)
            if self.preprocess_ahead:
                from autolung.preprocessing.case import preprocess_case

                model = self.models[0]
                model_image, model_geometry, prepared.back = p._model_frame(image, geometry, model)
                prepared.image = None
                del image
                data, _, prepared.properties = preprocess_case(
                    model_image, None, model_geometry, model.plans, model.configuration_name)
                prepared.data = p._compact_input(model, data, self.options)
            return prepared
        except BaseException:
            lock.close()
            raise

    def compute(self, item: _Prepared) -> Any:
        if self.progress is not None:
            self.progress.case_started(item.case.case_id)
        if item.data is not None:
            data, item.data = item.data, None
            return p._network_grid_result(self.models[0], data, item.properties, self.options, self.progress)
        if len(self.models) == 1 and not self.options.save_probabilities:
            # A cascade: its first stage and the preprocessing run here.
            model = self.models[0]
            model_image, model_geometry, back = p._model_frame(item.image, item.geometry, model)
            item.image = None
            data, properties = p._network_input(model_image, model_geometry, model, self.options, self.progress)
            del model_image
            data = p._compact_input(model, data, self.options)
            result = p._network_grid_result(model, data, properties, self.options, self.progress)
            del data
            return p._input_grid_labels(result, properties, model, back)
        image, item.image = item.image, None
        return p._ensemble_labels(item.case, image, item.geometry, self.output_folder, self.models, self.options,
                                  self.progress)

    def export(self, item: _Prepared, result: Any) -> Path:
        with item.lock:
            if item.properties:  # the network grid's result: back to the input's grid here
                result = p._input_grid_labels(result, item.properties, self.models[0], item.back)
            mask_path = p._write_mask(item.case, result, item.geometry, self.output_folder, self.models,
                                      self.options)
            p._record_locked(self.output_folder, self.models, self.options, item.case.case_id)
            return mask_path

    def discard(self, item: _Prepared) -> None:
        item.lock.close()


def predict_overlapped(cases: list[InputCase], output_folder: Path, models: Sequence[TrainedModel],
                       options: p.PredictionOptions, progress: p.PredictionProgress | None) -> list[Path]:
    """Predict ``cases`` as the serial loop does, with preparation and export in background threads.

    Returns:
        Mask paths of the cases finished before or now (not those another process holds).
    """
    stages = _PredictionStages(output_folder, models, options, progress)
    written: list[Path] = []

    def done(case: InputCase, mask_path: Path | None) -> None:
        skipped = mask_path is None
        if skipped:
            mask_path = stages.skipped.get(case.case_id)
        if mask_path is not None:
            written.append(mask_path)
        if progress is not None:
            if skipped:
                progress.case_started(case.case_id)
            progress.case_finished(case.case_id, skipped)

    run_stages(cases, stages, options.preprocessing_workers, options.export_workers, done)
    return written
