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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from autolung.errors import AutolungError, InvalidInputError, LockedError
from autolung.inference.case_prediction import (CaseOptions, compact_case_input, model_entry,
                                                 predict_preprocessed_case, predict_preprocessed_case_labels,
                                                 prediction_settings,
                                                 probabilities_to_labels, probability_dtype_for)
from autolung.inference.cv_outputs import save_cv_probabilities
from autolung.inference.inputs import InputCase, discover_cases, mask_ending, read_input_case
from autolung.inference.levers import ResolvedLevers, resolve_levers
from autolung.inference.model import TrainedModel
from autolung.inference.postprocessing import apply_postprocessing
from autolung.inference.sliding_window import ALL_AXES
from autolung.io.geometry import ImageGeometry
from autolung.labels import RegionMapping
from autolung.planning.plans import InferencePlan
from autolung.provenance import PREDICTIONS_RECORD, image_metadata, predictions_record, read_predictions_record
from autolung.utils.locking import file_lock, lock_owner
from autolung.utils.atomic import remove_partial_files_of, write_json_atomic

logger = logging.getLogger(__name__)


@dataclass
class PredictionOptions:
    """How to predict.

    ``mode`` sets the speed levers (:mod:`autolung.inference.levers`): "full" (every mirroring,
    step 0.5, whole volume), "fast" (body crop, window skipping, background outside the body, no
    mirroring, step 0.75) or "auto" (the device's measured default). Each lever left None follows
    the mode; a value overrides it.

    Attributes:
        mode: "auto", "full" or "fast".
        step_size: sliding-window stride as a fraction of the patch; None: the mode's.
        mirror: True mirrors all axes, False none; None: the mode's (``mirror_axes`` wins when set).
        mirror_axes: the axes (0=z, 1=y, 2=x) to mirror; None: from ``mirror`` or the mode.
        crop_to_body: tile only the body's bounding box (CT); None: the mode's.
        skip_empty_windows: skip windows without a body voxel (CT); None: the mode's.
        restrict_to_body: background outside the body mask (CT); None: the mode's.
        window_batch_size: windows per network call; None: 2, or 1 for large windows (``samples_per_call``).
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:1" or "mps".
        precision: "auto" (bfloat16 autocast where native, see ``resolve_precision``), "float32", "bfloat16".
        save_probabilities: also write ``<case>.npz`` (see ``cv_outputs``).
        output_ending: mask ending (".nii.gz", ".nrrd", ".mha", ".png"); None: the input's format.
        overwrite: redo cases whose mask exists.
        postprocessing: rules to apply; None uses the first model's ``postprocessing``.
        overlays: also draw a QC picture per case into ``<output>/overlays/<case>.png``.
        num_parts: split the cases into this many parts (several processes or machines sharing
            one output folder each take one).
        part_id: which part this call predicts, 0 to ``num_parts - 1`` (cases ``part_id::num_parts``
            of the sorted case list).
        preprocessing_workers: threads reading and preprocessing the next cases while the network
            runs (nnU-Net's ``-npp``); 0 does it in turn.
        export_workers: threads restoring, postprocessing and writing finished cases while the
            network runs on the next (nnU-Net's ``-nps``); 0 does it in turn.
    """

    step_size: float | None = None
    mirror: bool | None = None
    window_batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    save_probabilities: bool = False
    output_ending: str | None = None
    overwrite: bool = False
    postprocessing: dict | None = None
    overlays: bool = False
    num_parts: int = 1
    part_id: int = 0
    mode: str = "auto"
    mirror_axes: tuple[int, ...] | None = None
    crop_to_body: bool | None = None
    skip_empty_windows: bool | None = None
    restrict_to_body: bool | None = None
    preprocessing_workers: int = 0
    export_workers: int = 0

    def levers(self, whole_body_ct: bool = True) -> ResolvedLevers:
        """The levers these options give on ``device`` ("auto" resolved first) for models of
        whole-body CT or not (``whole_body_ct``), with the reasons."""
        axes = self.mirror_axes
        if axes is None and self.mirror is not None:
            axes = ALL_AXES if self.mirror else ()
        return resolve_levers(self.mode, resolve_prediction_device(self.device).type, self.step_size, axes,
                              self.crop_to_body, self.skip_empty_windows, self.restrict_to_body, whole_body_ct)

    def case_options(self, whole_body_ct: bool = True) -> CaseOptions:
        """What :func:`~autolung.inference.case_prediction.predict_preprocessed_case` needs of these options."""
        device = resolve_prediction_device(self.device) if self.device == "auto" else self.device
        return CaseOptions(self.levers(whole_body_ct).levers, device, self.precision, self.window_batch_size)


OVERLAY_FOLDER = "overlays"


class PredictionProgress(Protocol):
    """Receives prediction progress (the library never prints).

    ``autolung.progress.PredictionTasks`` implements it over the library's one progress
    protocol, :class:`autolung.progress.ProgressReporter`; the CLI passes that adapter.
    """

    def start(self, total_cases: int) -> None: ...

    def case_started(self, case_id: str) -> None: ...

    def windows(self, done: int, total: int) -> None: ...

    def case_finished(self, case_id: str, skipped: bool) -> None: ...


def resolve_prediction_device(name: str) -> torch.device:
    """The device to predict on: "auto" prefers CUDA, then MPS, then the CPU (as training does).

    Raises:
        AutolungError: a requested device that is not available.
    """
    from autolung.training.hardware import resolve_device

    base, _, index = name.partition(":")
    device = resolve_device(base)
    if index:
        device = torch.device(base, int(index))
    return device


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


def _sliding_window(model: TrainedModel, data: np.ndarray | torch.Tensor, properties: dict,
                    options: PredictionOptions, progress: PredictionProgress | None,
                    probability_dtype: str = "float32") -> np.ndarray:
    """Fold-averaged probabilities of a preprocessed case on the network grid (averaged logits
    where ``restores_logits``: the restore functions then apply the activation)."""
    from autolung.preprocessing.restore import restores_logits

    return predict_preprocessed_case(model.networks, data, model.configuration,
                                     options.case_options(predicts_whole_body_ct([model])),
                                     progress.windows if progress is not None else None, probability_dtype,
                                     keep_logits=restores_logits(model.configuration, properties))


def _compact_input(model: TrainedModel, data: np.ndarray, options: PredictionOptions) -> np.ndarray | torch.Tensor:
    """``data`` in bfloat16 where ``model``'s networks run in it (:func:`compact_case_input`)."""
    return compact_case_input(data, model.networks, options.case_options(predicts_whole_body_ct([model])))


def _network_grid_result(model: TrainedModel, data: np.ndarray | torch.Tensor, properties: dict,
                         options: PredictionOptions, progress: PredictionProgress | None) -> np.ndarray:
    """The sliding window's result for a case wanted only for its labels (:func:`_input_grid_labels`).

    Its uint8 labels ``(Z, Y, X)`` when the network grid is the original grid, painted as the
    slabs finish (no probability volume at all); else its probabilities ``(R, Z, Y, X)``, float16
    when large (:func:`probability_dtype_for`), for ``restore_label_map``.
    """
    from autolung.preprocessing.restore import on_original_grid

    if on_original_grid(properties):
        return predict_preprocessed_case_labels(model.networks, data, model.configuration,
                                                options.case_options(predicts_whole_body_ct([model])),
                                                model.plans.region_mapping,
                                                progress.windows if progress is not None else None)
    dtype = probability_dtype_for(model.plans.region_mapping.num_channels, tuple(data.shape[1:]))
    return _sliding_window(model, data, properties, options, progress, dtype)


def _input_grid_labels(result: np.ndarray, properties: dict, model: TrainedModel,
                       back: list[int] | None) -> np.ndarray:
    """The uint8 labels on the input grid from :func:`_network_grid_result`'s ``result``."""
    from autolung.preprocessing.restore import restore_label_map, restores_logits

    labels = result if result.ndim == 3 else restore_label_map(
        result, properties, model.configuration, model.plans.region_mapping,
        logits=restores_logits(model.configuration, properties))
    return np.ascontiguousarray(labels.transpose(back)) if back is not None else labels


def _model_frame(image: np.ndarray, geometry: ImageGeometry,
                 model: TrainedModel) -> tuple[np.ndarray, ImageGeometry, list[int] | None]:
    """The image in the axis order the model works in, and the order that undoes it (None: unchanged)."""
    from dataclasses import replace

    transpose = (model.configuration.inference or InferencePlan()).transpose
    if transpose is None or list(transpose) == [0, 1, 2]:
        return image, geometry, None
    moved = np.ascontiguousarray(image.transpose(0, *(a + 1 for a in transpose)))
    spacing = tuple(geometry.spacing[a] for a in transpose)
    shape = tuple(geometry.shape[a] for a in transpose)
    return moved, replace(geometry, spacing=spacing, shape=shape), [int(a) for a in np.argsort(transpose)]


def _network_probabilities(image: np.ndarray, geometry: ImageGeometry, model: TrainedModel,
                           options: PredictionOptions,
                           progress: PredictionProgress | None) -> tuple[np.ndarray, dict]:
    """Preprocess one case for ``model`` and run the sliding window: its ``(R, Z', Y', X')`` output
    (averaged logits where ``restores_logits``) and the properties."""
    data, properties = _network_input(image, geometry, model, options, progress)
    return _sliding_window(model, data, properties, options, progress), properties


def _network_input(image: np.ndarray, geometry: ImageGeometry, model: TrainedModel, options: PredictionOptions,
                   progress: PredictionProgress | None) -> tuple[np.ndarray, dict]:
    """The preprocessed case; for a cascade, followed by its previous stage's prediction, one-hot."""
    from autolung.preprocessing.case import preprocess_case

    data, _, properties = preprocess_case(image, None, geometry, model.plans, model.configuration_name)
    if model.previous_stage is not None:
        from autolung.preprocessing.previous_stage import (
            previous_stage_labels,
            previous_stage_on_grid,
            with_previous_stage,
        )
        from autolung.preprocessing.restore import restore_label_map, restores_logits

        previous = model.previous_stage
        probabilities, previous_properties = _network_probabilities(image, geometry, previous, options, progress)
        labels = restore_label_map(probabilities, previous_properties, previous.configuration,
                                   previous.plans.region_mapping,
                                   logits=restores_logits(previous.configuration, previous_properties))
        del probabilities
        on_grid = previous_stage_on_grid(labels, properties, model.configuration)
        data = with_previous_stage(data, on_grid, previous_stage_labels(model.plans))
    return data, properties


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
    from autolung.preprocessing.restore import restore_to_original, restores_logits

    total: np.ndarray | None = None
    for model in models:
        model_image, model_geometry, back = _model_frame(image, geometry, model)
        probabilities, properties = _network_probabilities(model_image, model_geometry, model, options, progress)
        del model_image
        restored = restore_to_original(probabilities, properties, model.configuration,
                                       logits=restores_logits(model.configuration, properties))
        del probabilities
        if back is not None:
            restored = np.ascontiguousarray(restored.transpose(0, *(a + 1 for a in back)))
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

    The raw image is dropped once preprocessed; the network-grid input is kept in bfloat16 where
    the networks run in it (:func:`compact_case_input`) and dropped once predicted. When the
    network grid is the original grid, the labels are painted as the sliding window's slabs
    finish and no probability volume is ever held; else large probabilities are kept as float16
    (:func:`probability_dtype_for`) and the original grid only ever holds one float32 channel, a
    float32 running maximum and the uint8 labels (``restore_label_map``), never all regions'
    probabilities at full resolution.

    Returns:
        The uint8 label map and the input's geometry.
    """
    image, geometry = read_input_case(case, len(model.plans.channel_names))
    model_image, model_geometry, back = _model_frame(image, geometry, model)
    del image
    data, properties = _network_input(model_image, model_geometry, model, options, progress)
    del model_image
    data = _compact_input(model, data, options)  # rebinding frees the float32 case
    result = _network_grid_result(model, data, properties, options, progress)
    del data
    return _input_grid_labels(result, properties, model, back), geometry


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
    _check_models(models)
    if len(models) == 1 and not options.save_probabilities:
        seg, geometry = predict_case_labels(case, models[0], options, progress)
    else:
        image, geometry = read_input_case(case, len(models[0].plans.channel_names))
        seg = _ensemble_labels(case, image, geometry, output_folder, models, options, progress)
    return _write_mask(case, seg, geometry, output_folder, models, options)


def _ensemble_labels(case: InputCase, image: np.ndarray, geometry: ImageGeometry, output_folder: Path,
                     models: Sequence[TrainedModel], options: PredictionOptions,
                     progress: PredictionProgress | None) -> np.ndarray:
    """Labels from the probabilities averaged over models (saved as ``<case>.npz`` when asked)."""
    mapping = models[0].plans.region_mapping
    probabilities = predict_case_probabilities(image, geometry, models, options, progress)
    del image
    if options.save_probabilities:
        save_cv_probabilities(output_folder, case.case_id, probabilities, geometry, mapping)
    return probabilities_to_labels(probabilities, mapping)


def _write_mask(case: InputCase, seg: np.ndarray, geometry: ImageGeometry, output_folder: Path,
                models: Sequence[TrainedModel], options: PredictionOptions) -> Path:
    """Postprocess and write one case's mask (and its overlay when asked)."""
    from autolung.io.images import write_image

    mask_path, _ = _output_paths(case, output_folder, options)
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
        raise InvalidInputError("the output folder is the input folder; choose another `output_folder`", path=output_folder)


def predicts_whole_body_ct(models: Sequence[TrainedModel]) -> bool:
    """Whether every model is a CT model of whole body sections, where the CPU's ``fast``
    default was measured (:func:`~autolung.inference.levers.is_whole_body_ct`)."""
    from autolung.inference.levers import is_whole_body_ct

    return all(is_whole_body_ct(model.configuration) for model in models)


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
        Mask paths of all cases of this part, finished before or now; a case another live process
        is predicting (its case lock is held) is left to it and not listed.
    """
    options = options or PredictionOptions()
    options = replace(options, device=str(resolve_prediction_device(options.device)))
    logger.info("predicting on %s", options.device)
    input_path, output_folder = Path(input_path), Path(output_folder)
    check_output_folder(input_path, output_folder)
    logger.info(options.levers(predicts_whole_body_ct(models)).explain())
    cases = case_part(discover_cases(input_path), options.num_parts, options.part_id)
    created = not output_folder.exists()
    output_folder.mkdir(parents=True, exist_ok=True)
    try:
        # No folder-wide lock: processes sharing the folder each lock the case they predict.
        return _predict_cases(cases, output_folder, models, options, progress)
    except BaseException:
        if created:  # a run that failed before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                output_folder.rmdir()
        raise


def case_part(cases: list, num_parts: int, part_id: int) -> list:
    """Cases ``part_id::num_parts`` of the cases sorted by id (nnU-Net's split).

    Raises:
        InvalidInputError: ``num_parts`` below 1, or ``part_id`` outside ``0..num_parts - 1``.
    """
    if num_parts < 1:
        raise InvalidInputError(f"num_parts must be at least 1, got {num_parts}")
    if not 0 <= part_id < num_parts:
        raise InvalidInputError(f"part_id must be in 0..{num_parts - 1}, got {part_id}")
    chosen = sorted(cases, key=lambda case: case.case_id)[part_id::num_parts]
    if num_parts > 1:
        logger.info("part %d of %d: %d of %d cases", part_id, num_parts, len(chosen), len(cases))
    return chosen


CASE_LOCK_PREFIX = ".autolung-case-"
RECORD_LOCK = ".autolung-record.lock"
# A record update takes milliseconds; waiting this long means something is wrong.
RECORD_LOCK_WAIT_S = 60.0


def _predict_cases(cases: list, output_folder: Path, models: Sequence[TrainedModel], options: PredictionOptions,
                   progress: PredictionProgress | None) -> list[Path]:
    if progress is not None:
        progress.start(len(cases))
    for name in ("preprocessing_workers", "export_workers"):
        if getattr(options, name) < 0:
            raise InvalidInputError(f"{name} must be 0 or more, got {getattr(options, name)}")
    if options.preprocessing_workers or options.export_workers:
        from autolung.inference.overlapped import predict_overlapped

        return predict_overlapped(cases, output_folder, models, options, progress)
    written = []
    for case in cases:
        if progress is not None:
            progress.case_started(case.case_id)
        mask_path, skipped = _predict_locked_case(case, output_folder, models, options, progress)
        if mask_path is not None:
            written.append(mask_path)
        if progress is not None:
            progress.case_finished(case.case_id, skipped)
    return written


def _record_locked(output_folder: Path, models: Sequence[TrainedModel], options: PredictionOptions,
                   case_id: str) -> None:
    """Add a case to the provenance record; processes sharing the folder take turns."""
    try:
        with file_lock(output_folder / RECORD_LOCK, "record", wait_s=RECORD_LOCK_WAIT_S):
            remove_partial_files_of([output_folder / PREDICTIONS_RECORD])  # a killed writer's, under the lock
            _record_prediction(output_folder, models, options, case_id)
    except LockedError as exc:
        raise AutolungError(f"cannot update {PREDICTIONS_RECORD}: {exc.problem}", path=output_folder) from None


def claim_case(case: InputCase, output_folder: Path,
               options: PredictionOptions) -> tuple[contextlib.ExitStack | None, Path | None]:
    """Take a case's lock and decide whether it still needs predicting.

    Returns:
        ``(held lock, None)`` when the case is to be predicted (the caller closes the lock once
        its mask and record are written); ``(None, mask)`` when it is finished already;
        ``(None, None)`` when another live process holds it.
    """
    lock_path = output_folder / f"{CASE_LOCK_PREFIX}{case.case_id}.lock"
    lock = contextlib.ExitStack()
    try:
        lock.enter_context(file_lock(lock_path, "predict"))
    except LockedError:
        logger.info("%s: being predicted by another process (pid %s), left to it", case.case_id,
                    lock_owner(lock_path))
        return None, None
    try:
        mask_path, npz_path = _output_paths(case, output_folder, options)
        # Only this case's leftovers: other processes may be writing their cases right now.
        remove_partial_files_of([mask_path, npz_path])
        if not options.overwrite and _is_finished(mask_path, npz_path, options):
            logger.info("%s: already predicted, skipped (use overwrite to redo)", case.case_id)
            lock.close()
            return None, mask_path
    except BaseException:
        lock.close()
        raise
    return lock, None


def _predict_locked_case(case: InputCase, output_folder: Path, models: Sequence[TrainedModel],
                         options: PredictionOptions,
                         progress: PredictionProgress | None) -> tuple[Path | None, bool]:
    """Predict one case under its own lock: ``(mask or None when another process has it, skipped)``."""
    lock, finished = claim_case(case, output_folder, options)
    if lock is None:
        return finished, True
    with lock:
        mask_path = predict_case(case, output_folder, models, options, progress)
        _record_locked(output_folder, models, options, case.case_id)
        return mask_path, False


def describe_models(models: Sequence[TrainedModel]) -> list[dict]:
    """What ``autolung_predictions.json`` says of each model: configuration, folds, source, digest."""
    return [model_entry(m.configuration_name, m.folds, str(m.folder), m.plans.digest(), m.checkpoint_name)
            for m in models]


def _record_prediction(output_folder: Path, models: Sequence[TrainedModel], options: PredictionOptions,
                       case_id: str) -> None:
    """Add a finished case to the folder's provenance record (rewritten atomically per case)."""
    postprocessing = options.postprocessing if options.postprocessing is not None else models[0].postprocessing
    settings = prediction_settings(options.levers(predicts_whole_body_ct(models)), options.precision, postprocessing)
    previous = read_predictions_record(output_folder)
    record = predictions_record(describe_models(models), settings, [case_id], previous)
    write_json_atomic(output_folder / PREDICTIONS_RECORD, record)
