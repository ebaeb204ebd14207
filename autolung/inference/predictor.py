"""Predict label maps for new images with one or more trained models.

Per case: read the image(s) -> ``preprocess_case`` (identical to training) -> sliding window with
test-time mirroring, averaged over folds -> ``restore_to_original`` -> average over models
(configurations) -> labels per Z slab -> postprocessing -> mask written atomically with the
input's exact geometry. The mask is written last, so an existing mask means a finished case;
re-running skips finished cases unless ``overwrite`` is set.
"""
from __future__ import annotations

import contextlib
import logging
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from autolung.errors import InvalidInputError
from autolung.inference.cv_outputs import save_cv_probabilities
from autolung.inference.inputs import InputCase, discover_cases, mask_ending, read_input_case
from autolung.inference.levers import ResolvedLevers, body_threshold, resolve_levers
from autolung.inference.model import TrainedModel
from autolung.inference.postprocessing import apply_postprocessing
from autolung.inference.sliding_window import ALL_AXES, predict_sliding_window
from autolung.io.geometry import ImageGeometry
from autolung.labels import RegionMapping
from autolung.provenance import PREDICTIONS_RECORD, image_metadata, predictions_record, read_predictions_record
from autolung.utils.locking import folder_lock
from autolung.utils.atomic import remove_partial_files, write_json_atomic

logger = logging.getLogger(__name__)

# Slab of Z slices converted to labels at once: bounds the temporaries of argmax/threshold.
LABEL_SLAB = 16


@dataclass
class PredictionOptions:
    """How to predict.

    ``mode`` sets the speed levers (:mod:`autolung.inference.levers`): "full" (every mirroring,
    step 0.5, whole volume), "fast" (body crop, window skipping, no mirroring) or "auto" (the
    device's measured default). Each lever left None follows the mode; a value overrides it.

    Attributes:
        mode: "auto", "full" or "fast".
        step_size: sliding-window stride as a fraction of the patch; None: the mode's.
        mirror: True mirrors all axes, False none; None: the mode's (``mirror_axes`` wins when set).
        mirror_axes: the axes (0=z, 1=y, 2=x) to mirror; None: from ``mirror`` or the mode.
        crop_to_body: tile only the body's bounding box (CT); None: the mode's.
        skip_empty_windows: skip windows without a body voxel (CT); None: the mode's.
        window_batch_size: windows per network call; None: 2 in bfloat16, 1 in float32
            (``default_window_batch_size``).
        device: torch device.
        precision: "auto" (bfloat16 autocast where native, see ``resolve_precision``), "float32", "bfloat16".
        save_probabilities: also write ``<case>.npz`` (see ``cv_outputs``).
        output_ending: mask ending (".nii.gz", ".nrrd", ".mha", ".png"); None: the input's format.
        overwrite: redo cases whose mask exists.
        postprocessing: rules to apply; None uses the first model's ``postprocessing``.
        overlays: also draw a QC picture per case into ``<output>/overlays/<case>.png``.
    """

    step_size: float | None = None
    mirror: bool | None = None
    window_batch_size: int | None = None
    device: str = "cpu"
    precision: str = "auto"
    save_probabilities: bool = False
    output_ending: str | None = None
    overwrite: bool = False
    postprocessing: dict | None = None
    overlays: bool = False
    mode: str = "auto"
    mirror_axes: tuple[int, ...] | None = None
    crop_to_body: bool | None = None
    skip_empty_windows: bool | None = None

    def levers(self) -> ResolvedLevers:
        """The levers these options give on ``device``, with the reasons."""
        import torch

        axes = self.mirror_axes
        if axes is None and self.mirror is not None:
            axes = ALL_AXES if self.mirror else ()
        return resolve_levers(self.mode, torch.device(self.device).type, self.step_size, axes,
                              self.crop_to_body, self.skip_empty_windows)


OVERLAY_FOLDER = "overlays"


class PredictionProgress(Protocol):
    """Receives progress; the CLI shows it with rich, the library never prints."""

    def start(self, total_cases: int) -> None: ...

    def case_started(self, case_id: str) -> None: ...

    def windows(self, done: int, total: int) -> None: ...

    def case_finished(self, case_id: str, skipped: bool) -> None: ...


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _check_models(models: Sequence[TrainedModel]) -> RegionMapping:
    if not models:
        raise InvalidInputError("no model given")
    mapping = models[0].plans.region_mapping
    for model in models[1:]:
        if model.plans.region_mapping != mapping:
            raise InvalidInputError("models to ensemble predict different regions", path=model.folder)
    return mapping


def _sliding_window(model: TrainedModel, data: np.ndarray, options: PredictionOptions,
                    progress: PredictionProgress | None) -> np.ndarray:
    """Fold-averaged probabilities of a preprocessed case on the network grid."""
    levers = options.levers().levers
    return predict_sliding_window(
        model.networks, data, model.configuration.patch_size, step_size=levers.step_size,
        mirror_axes=levers.mirror_axes, window_batch_size=options.window_batch_size,
        device=options.device, precision=options.precision,
        progress=progress.windows if progress is not None else None,
        body_threshold=body_threshold(model.configuration.normalization), crop_to_body=levers.crop_to_body,
        skip_empty_windows=levers.skip_empty_windows)


def _network_probabilities(image: np.ndarray, geometry: ImageGeometry, model: TrainedModel,
                           options: PredictionOptions,
                           progress: PredictionProgress | None) -> tuple[np.ndarray, dict]:
    """Preprocess one case for ``model`` and run the sliding window: ``(R, Z', Y', X')`` and properties."""
    from autolung.preprocessing.case import preprocess_case

    data, _, properties = preprocess_case(image, None, geometry, model.plans, model.configuration_name)
    return _sliding_window(model, data, options, progress), properties


def predict_case_probabilities(image: np.ndarray, geometry: ImageGeometry, models: Sequence[TrainedModel],
                               options: PredictionOptions, progress: PredictionProgress | None = None) -> np.ndarray:
    """Probabilities ``(R, *geometry.shape)`` float32 of one case, averaged over models and folds.

    Args:
        image: ``(C, Z, Y, X)`` raw image.
        geometry: its geometry.
        models: trained models (configurations); each averages its own folds.
        options: prediction options.
        progress: optional progress receiver (window counts).

    Returns:
        float32 probabilities on the original image grid.
    """
    from autolung.preprocessing.restore import restore_to_original

    total: np.ndarray | None = None
    for model in models:
        probabilities, properties = _network_probabilities(image, geometry, model, options, progress)
        restored = restore_to_original(probabilities, properties, model.configuration)
        del probabilities
        if total is None:
            total = restored
        else:
            total += restored
        del restored
    assert total is not None
    if len(models) > 1:
        total /= len(models)
    return total


def predict_case_labels(case: InputCase, model: TrainedModel, options: PredictionOptions,
                        progress: PredictionProgress | None = None) -> tuple[np.ndarray, ImageGeometry]:
    """Label map of one case with one model, keeping peak memory low.

    The raw image is dropped once preprocessed, the network-grid input once predicted, and the
    original grid only ever holds one float32 channel, a float32 running maximum and the uint8
    labels (``restore_label_map``), never all regions' probabilities at full resolution.

    Returns:
        The uint8 label map and the input's geometry.
    """
    from autolung.preprocessing.case import preprocess_case
    from autolung.preprocessing.restore import restore_label_map

    image, geometry = read_input_case(case, len(model.plans.channel_names))
    data, _, properties = preprocess_case(image, None, geometry, model.plans, model.configuration_name)
    del image
    probabilities = _sliding_window(model, data, options, progress)
    del data
    return restore_label_map(probabilities, properties, model.configuration, model.plans.region_mapping), geometry


def probabilities_to_labels(probabilities: np.ndarray, mapping: RegionMapping) -> np.ndarray:
    """Label map from probabilities, converted in Z slabs so temporaries stay small.

    Args:
        probabilities: ``(R, Z, Y, X)``.
        mapping: the plans' region mapping.

    Returns:
        uint8 label map ``(Z, Y, X)``.
    """
    seg = np.zeros(probabilities.shape[1:], dtype=np.uint8)
    for begin in range(0, seg.shape[0], LABEL_SLAB):
        seg[begin:begin + LABEL_SLAB] = mapping.probabilities_to_labels(probabilities[:, begin:begin + LABEL_SLAB])
    return seg


def _output_paths(case: InputCase, output_folder: Path, options: PredictionOptions) -> tuple[Path, Path]:
    ending = options.output_ending or mask_ending(case)
    return output_folder / f"{case.case_id}{ending}", output_folder / f"{case.case_id}.npz"


def _is_finished(mask_path: Path, npz_path: Path, options: PredictionOptions) -> bool:
    return mask_path.is_file() and (not options.save_probabilities or npz_path.is_file())


def predict_case(case: InputCase, output_folder: Path, models: Sequence[TrainedModel], options: PredictionOptions,
                 progress: PredictionProgress | None = None) -> Path:
    """Predict one input case and write its mask (and probabilities when asked).

    Args:
        case: the input case (one file per channel, or a DICOM folder).
        output_folder: where outputs go.
        models: trained models.
        options: prediction options.
        progress: optional progress receiver.

    Returns:
        The mask path.
    """
    from autolung.io.images import write_image

    mapping = _check_models(models)
    mask_path, npz_path = _output_paths(case, output_folder, options)
    if len(models) == 1 and not options.save_probabilities:
        seg, geometry = predict_case_labels(case, models[0], options, progress)
    else:
        image, geometry = read_input_case(case, len(models[0].plans.channel_names))
        probabilities = predict_case_probabilities(image, geometry, models, options, progress)
        del image
        if options.save_probabilities:
            save_cv_probabilities(output_folder, case.case_id, probabilities, geometry, mapping)
        seg = probabilities_to_labels(probabilities, mapping)
        del probabilities
    postprocessing = options.postprocessing if options.postprocessing is not None else models[0].postprocessing
    seg = apply_postprocessing(seg, postprocessing)
    metadata = image_metadata([model.plans.digest() for model in models])
    write_image(seg, _output_geometry(geometry, mask_path), mask_path, metadata=metadata)
    if options.overlays:
        _draw_overlay(case, seg, geometry, output_folder, models)
    logger.info("%s: written %s (peak RSS %.0f MB)", case.case_id, mask_path, peak_rss_mb())
    return mask_path


def _draw_overlay(case: InputCase, seg: np.ndarray, geometry: ImageGeometry, output_folder: Path,
                  models: Sequence[TrainedModel]) -> Path:
    """QC montage of the case with its predicted outlines (the image is read again: it was
    dropped during prediction to keep peak memory low)."""
    from autolung.visualization.overlay import render_overlay

    image, _ = read_input_case(case, len(models[0].plans.channel_names))
    digests = sorted({model.plans.digest() for model in models})
    return render_overlay(image, seg, None, output_folder / OVERLAY_FOLDER / f"{case.case_id}.png",
                          spacing=geometry.spacing, title=case.case_id, plans_digest="+".join(digests))


def _output_geometry(geometry: ImageGeometry, mask_path: Path) -> ImageGeometry:
    """The input geometry, with the format key following the chosen output ending."""
    from dataclasses import replace

    from autolung.io.formats import format_of

    return replace(geometry, file_format=format_of(mask_path))


def check_output_folder(input_path: Path, output_folder: Path) -> None:
    """Refuse writing into the input folder (inputs are never overwritten)."""
    source = input_path.resolve()
    target = output_folder.resolve()
    if target == source or (source.is_file() and target == source.parent):
        raise InvalidInputError("the output folder is the input folder; choose another -o", path=output_folder)


def predict_paths(input_path: str | Path, output_folder: str | Path, models: Sequence[TrainedModel],
                  options: PredictionOptions | None = None,
                  progress: PredictionProgress | None = None) -> list[Path]:
    """Predict every case found at ``input_path`` into ``output_folder``.

    Args:
        input_path: an image file, a folder of images (``_0000`` channel suffixes or plain
            single-channel files), a DICOM series folder, or a folder of DICOM series folders.
        output_folder: created when missing; may not be the input folder.
        models: trained models (one per configuration to ensemble).
        options: prediction options (defaults when None).
        progress: optional progress receiver.

    Returns:
        Mask paths of all cases, finished before or now.
    """
    options = options or PredictionOptions()
    input_path, output_folder = Path(input_path), Path(output_folder)
    check_output_folder(input_path, output_folder)
    logger.info(options.levers().explain())
    cases = discover_cases(input_path)
    created = not output_folder.exists()
    output_folder.mkdir(parents=True, exist_ok=True)
    try:
        # A second run into the same folder would delete this run's temporary files.
        with folder_lock(output_folder, "predict"):
            remove_partial_files(output_folder)
            return _predict_cases(cases, output_folder, models, options, progress)
    except BaseException:
        if created:  # a run that failed before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                output_folder.rmdir()
        raise


def _predict_cases(cases: list, output_folder: Path, models: Sequence[TrainedModel], options: PredictionOptions,
                   progress: PredictionProgress | None) -> list[Path]:
    if progress is not None:
        progress.start(len(cases))
    written = []
    for case in cases:
        mask_path, npz_path = _output_paths(case, output_folder, options)
        skipped = not options.overwrite and _is_finished(mask_path, npz_path, options)
        if progress is not None:
            progress.case_started(case.case_id)
        if skipped:
            logger.info("%s: already predicted, skipped (use overwrite to redo)", case.case_id)
        else:
            mask_path = predict_case(case, output_folder, models, options, progress)
        written.append(mask_path)
        if not skipped:
            _record_prediction(output_folder, models, options, case.case_id)
        if progress is not None:
            progress.case_finished(case.case_id, skipped)
    return written


def describe_models(models: Sequence[TrainedModel]) -> list[dict]:
    """What ``autolung_predictions.json`` says of each model: configuration, folds, source, digest."""
    return [{"configuration": m.configuration_name, "folds": list(m.folds), "source": str(m.folder),
             "plans_digest": m.plans.digest()} for m in models]


def _record_prediction(output_folder: Path, models: Sequence[TrainedModel], options: PredictionOptions,
                       case_id: str) -> None:
    """Add a finished case to the folder's provenance record (rewritten atomically per case)."""
    levers = options.levers()
    settings = {**levers.record(), "mirror": bool(levers.levers.mirror_axes), "precision": options.precision,
                "postprocessing": options.postprocessing if options.postprocessing is not None
                else models[0].postprocessing}
    previous = read_predictions_record(output_folder)
    record = predictions_record(describe_models(models), settings, [case_id], previous)
    write_json_atomic(output_folder / PREDICTIONS_RECORD, record)
