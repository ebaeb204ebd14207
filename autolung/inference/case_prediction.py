"""Predicting one preprocessed case: the one path shared by every caller that predicts.

``autolung predict`` (:mod:`autolung.inference.predictor`, serial and overlapped), training's final
validation (:mod:`autolung.training.validation`, modes fast and full) and, through the
probabilities validation saves, ``find_best_configuration`` all go through this module:

- :func:`resolve_configuration_levers` and :func:`configuration_levers` narrow the chosen levers
  to what a configuration's networks are mirrored along (a 2D network never mirrors z; an
  imported model only along the axes it allows);
- :func:`predict_preprocessed_case` runs the sliding window on a preprocessed case with those
  levers, the device, the precision and the configuration's inference plan;
  :func:`predict_preprocessed_case_labels` does the same for a case wanted only for its labels
  on the network grid, painting them as slabs finish;
- :func:`probabilities_to_labels` turns probabilities into a label map;
- :func:`prediction_settings` and :func:`model_entry` are what ``autolung_predictions.json``
  records of how the cases were predicted and by which model.

So the same preprocessed case with the same options gives the same probabilities whichever
command predicts it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from autolung.inference.levers import Levers, ResolvedLevers, body_threshold, resolve_levers
from autolung.inference.slab_sinks import labels_in_chunks
from autolung.inference.sliding_window import (predict_sliding_window, predict_sliding_window_labels,
                                              resolve_precision, window_input)
from autolung.labels import RegionMapping
from autolung.planning.plans import ConfigurationPlan, InferencePlan

logger = logging.getLogger(__name__)

# A case predicted only for its labels keeps float16 probabilities from this size of float32 ones.
FLOAT16_PROBABILITIES_FROM_BYTES = 256 * 2 ** 20


@dataclass(frozen=True)
class CaseOptions:
    """How one preprocessed case is predicted.

    Attributes:
        levers: step size, mirror axes, body crop and window skipping
            (:class:`~autolung.inference.levers.Levers`); the mirror axes are narrowed per
            configuration by :func:`network_mirror_axes`.
        device: torch device the networks run on (the networks are moved there).
        precision: "float32", "bfloat16" or "auto"
            (:func:`~autolung.inference.sliding_window.resolve_precision`).
        window_batch_size: windows per network call; None: the sliding window's default (2, or 1
            for large windows).
    """

    levers: Levers
    device: str | torch.device = "cpu"
    precision: str = "float32"
    window_batch_size: int | None = None


def network_mirror_axes(axes: Sequence[int], dim: int, allowed: Sequence[int] | None = None) -> tuple[int, ...]:
    """The requested mirror axes a configuration's networks are mirrored along.

    Args:
        axes: requested array axes (0=z, 1=y, 2=x).
        dim: the networks' dimension; 2D networks see (y, x) slices, so mirroring z would only
            reorder slices and is dropped.
        allowed: the axes the model allows (``InferencePlan.mirror_axes``: a model trained
            without mirroring allows none); None allows all.

    Returns:
        The kept axes, in the order given.
    """
    kept = tuple(int(axis) for axis in axes if dim != 2 or int(axis) != 0)
    if allowed is not None:
        kept = tuple(axis for axis in kept if axis in tuple(allowed))
    return kept


def configuration_levers(chosen: ResolvedLevers, configuration: ConfigurationPlan) -> ResolvedLevers:
    """``chosen`` with its mirror axes narrowed to those ``configuration``'s networks are mirrored along.

    Args:
        chosen: levers resolved for a mode and device
            (:func:`~autolung.inference.levers.resolve_levers`).
        configuration: the configuration that predicts.

    Returns:
        ``chosen`` itself when nothing is narrowed, else a copy saying why.
    """
    allowed = (configuration.inference or InferencePlan()).mirror_axes
    axes = network_mirror_axes(chosen.levers.mirror_axes, configuration.dim, allowed)
    if axes == tuple(chosen.levers.mirror_axes):
        return chosen
    reason = (f"mirror_axes={list(axes)}: the axes {configuration.name}'s {configuration.dim}D networks "
              "are mirrored along")
    return ResolvedLevers(chosen.mode, replace(chosen.levers, mirror_axes=axes), [*chosen.reasons, reason])


def resolve_configuration_levers(mode: str, device: str | torch.device,
                                 configuration: ConfigurationPlan) -> ResolvedLevers:
    """The levers of ``mode`` on ``device``, narrowed to ``configuration`` (:func:`configuration_levers`).

    Args:
        mode: "auto", "full" or "fast" (:mod:`autolung.inference.levers`).
        device: where the networks run; decides what "auto" means.
        configuration: the configuration that predicts.

    Returns:
        The resolved levers, with the reasons.
    """
    return configuration_levers(resolve_levers(mode, torch.device(device).type), configuration)


def _body_levers_for(levers: Levers, data: np.ndarray, configuration: ConfigurationPlan) -> Levers:
    """``levers`` without the body levers where the case is a crop rather than a whole body section."""
    from autolung.inference.levers import spans_body_section

    if not (levers.crop_to_body or levers.skip_empty_windows or levers.restrict_to_body):
        return levers
    if spans_body_section(data.shape[-2:], configuration.spacing[-2:]):
        return levers
    extent = [round(float(n) * float(s)) for n, s in zip(data.shape[-2:], configuration.spacing[-2:])]
    logger.info("body levers off: the case spans %s mm in-plane, a crop rather than a whole body section", extent)
    return replace(levers, crop_to_body=False, skip_empty_windows=False, restrict_to_body=False)


def compact_case_input(data: np.ndarray, networks: nn.Module | Sequence[nn.Module],
                       options: CaseOptions) -> np.ndarray | torch.Tensor:
    """The preprocessed case in the smallest dtype that changes no prediction.

    bfloat16 where ``options.precision`` resolves to bfloat16 for these networks
    (:func:`~autolung.inference.sliding_window.window_input`: autocast would cast each window
    anyway), else ``data`` itself. The caller drops ``data`` afterwards to free its memory.

    Args:
        data: the preprocessed case ``(C, Z, Y, X)``, float32.
        networks: the networks that will predict it.
        options: device and precision.

    Returns:
        What :func:`predict_preprocessed_case` accepts as ``data``.
    """
    first = networks if isinstance(networks, nn.Module) else networks[0]
    if resolve_precision(options.precision, options.device, first) != "bfloat16":
        return data
    return window_input(data, "bfloat16")


def probability_dtype_for(channels: int, spatial: Sequence[int]) -> str:
    """The dtype of a case's probabilities when only its label map is wanted.

    float16 from :data:`FLOAT16_PROBABILITIES_FROM_BYTES` of float32 probabilities (a
    600x512x512 CT with two regions: 1.26 GB in float32), float32 below. Summing stays float32;
    only the finished probabilities are stored as float16, which rounds a value in [0, 1] by at
    most 2.4e-4 (half its spacing, 2**-11, just below 1). A label can change only where a
    probability lies that close to 0.5 or to another channel's, which float32 arithmetic in
    another order (threads, device) can flip too.

    Args:
        channels: output channels R.
        spatial: the network grid's shape.

    Returns:
        "float16" or "float32".
    """
    size = 4 * int(channels) * int(np.prod([int(n) for n in spatial]))
    return "float16" if size >= FLOAT16_PROBABILITIES_FROM_BYTES else "float32"


def predict_preprocessed_case(networks: nn.Module | Sequence[nn.Module], data: np.ndarray | torch.Tensor,
                              configuration: ConfigurationPlan, options: CaseOptions,
                              progress: Callable[[int, int], None] | None = None,
                              probability_dtype: str = "float32", keep_logits: bool = False) -> np.ndarray:
    """Probabilities of one preprocessed case on the network grid, averaged over networks and mirrorings.

    Args:
        networks: one network or several (folds) of ``configuration``, each giving one sigmoid
            logit per region (softmax-trained networks wrapped in
            :class:`~autolung.inference.model.SoftmaxAsSigmoidLogits`, or raw outputs when the
            configuration's inference plan averages logits).
        data: the preprocessed case ``(C, Z, Y, X)`` (with a cascade's previous-stage channels),
            float32 or from :func:`compact_case_input`.
        configuration: its configuration: patch size, dimension, normalization (for the body
            levers) and inference plan (activation, window weights, allowed mirror axes).
        options: levers, device, precision and window batch size.
        progress: optional ``progress(done, total)`` called after each window batch.
        probability_dtype: "float32", or "float16" for a case wanted only for its labels
            (:func:`probability_dtype_for`).
        keep_logits: return the averaged logits, unactivated, for a case whose output is resampled
            (:func:`autolung.preprocessing.restore.restores_logits`).

    Returns:
        ``(R, Z, Y, X)`` probabilities (or averaged logits) of ``probability_dtype``, the shape of ``data``.
    """
    return predict_sliding_window(networks, data, configuration.patch_size, progress=progress,
                                  probability_dtype=probability_dtype, keep_logits=keep_logits,
                                  **_sliding_window_options(data, configuration, options))


def predict_preprocessed_case_labels(networks: nn.Module | Sequence[nn.Module], data: np.ndarray | torch.Tensor,
                                     configuration: ConfigurationPlan, options: CaseOptions,
                                     region_mapping: RegionMapping,
                                     progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The label map of :func:`predict_preprocessed_case`'s probabilities, painted as slabs finish.

    For a case whose labels need no resampling or uncropping: its probabilities are never held
    for the whole volume
    (:func:`~autolung.inference.sliding_window.predict_sliding_window_labels`).

    Args:
        networks: as :func:`predict_preprocessed_case`.
        data: as :func:`predict_preprocessed_case`.
        configuration: as :func:`predict_preprocessed_case`.
        options: as :func:`predict_preprocessed_case`.
        region_mapping: the plans' region mapping.
        progress: optional ``progress(done, total)`` called after each window batch.

    Returns:
        uint8 labels ``(Z, Y, X)`` on the network grid.
    """
    return predict_sliding_window_labels(networks, data, configuration.patch_size, region_mapping,
                                         progress=progress, **_sliding_window_options(data, configuration, options))


def _sliding_window_options(data: np.ndarray | torch.Tensor, configuration: ConfigurationPlan,
                            options: CaseOptions) -> dict:
    """The sliding window's keyword arguments for ``configuration`` and ``options``."""
    inference = configuration.inference or InferencePlan()
    levers = _body_levers_for(options.levers, data, configuration)
    return dict(
        step_size=levers.step_size,
        mirror_axes=network_mirror_axes(levers.mirror_axes, configuration.dim, inference.mirror_axes),
        window_batch_size=options.window_batch_size, device=options.device, precision=options.precision,
        average_logits=inference.average_logits, output_activation=inference.output_activation,
        weights=inference.window_weights, body_threshold=body_threshold(configuration.normalization),
        crop_to_body=levers.crop_to_body, skip_empty_windows=levers.skip_empty_windows,
        restrict_to_body=levers.restrict_to_body)


def probabilities_to_labels(probabilities: np.ndarray, mapping: RegionMapping) -> np.ndarray:
    """Label map from probabilities, converted in Z slabs so temporaries stay small.

    Args:
        probabilities: ``(R, Z, Y, X)``.
        mapping: the plans' region mapping.

    Returns:
        uint8 label map ``(Z, Y, X)``.
    """
    return labels_in_chunks(probabilities, mapping)


def prediction_settings(chosen: ResolvedLevers, precision: str, postprocessing: dict | None) -> dict:
    """The ``options`` of ``autolung_predictions.json``: the settings that change results.

    Args:
        chosen: the levers used.
        precision: the precision asked for.
        postprocessing: the rules applied, or None.

    Returns:
        JSON-ready settings.
    """
    return {**chosen.record(), "mirror": bool(chosen.levers.mirror_axes), "precision": precision,
            "postprocessing": postprocessing}


def model_entry(configuration: str, folds: Sequence[int | str], source: str, plans_digest: str,
                checkpoint: str) -> dict:
    """One entry of the ``models`` of ``autolung_predictions.json``.

    Args:
        configuration: configuration name.
        folds: the folds that predicted.
        source: the folder the model came from.
        plans_digest: its plans' digest.
        checkpoint: which checkpoint the folds were loaded from.

    Returns:
        JSON-ready entry.
    """
    return {"configuration": configuration, "folds": list(folds), "source": source, "plans_digest": plans_digest,
            "checkpoint": checkpoint}
