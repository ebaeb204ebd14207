"""From network output on the preprocessed grid back to the original image grid.

Inverse of :func:`autolung.preprocessing.case.preprocess_case`: each region channel is resampled
to the cropped original shape, then placed into the full original shape (zeros outside the crop).

Peak memory, with ``N`` the voxels of the full original image and ``K`` of its crop box (float32,
4 bytes each), beyond the input probabilities; measured with tracemalloc for a 134x512x512 CT
restored from 123x301x301 (K = 134x500x500):

- :func:`iter_restored_channels` holds one channel at a time: the channel on the full grid
  (``4 N``), the intermediate results of the axis passes (about ``4 K``; less when the
  preprocessed grid is coarser) and small slab temporaries (a few MB);
- :func:`restore_to_original` adds its output: about ``4 (R N + N + K)`` bytes (562 MB measured
  for R = 2, N = 35 M);
- :func:`restore_label_map` keeps only a running maximum (float32) and the uint8 label map
  instead of all channels: about ``4 (2 N + K) + 2 N`` bytes whatever the number of regions
  (457 MB measured for the same case). When the network grid is the original grid (nothing
  resampled or cropped) it paints the labels slab by slab straight from the probabilities:
  about ``N`` bytes (the labels) beyond the input.

For a 512x512x600 CT (N = 157 M voxels, 629 MB per float32 channel, K close to N) and two
regions that is about 2.5 GB for :func:`restore_to_original` and 2.2 GB for
:func:`restore_label_map`; prefer the latter (or the iterator) in the predictor.

Models that average logits (imported nnU-Net models) resample the averaged logits and apply
their activation afterwards, as nnU-Net does, whenever the case is resampled or cropped
(:func:`restores_logits`); linear interpolation of probabilities and of logits part at the
boundaries, where one side is more certain than the other.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from autolung.labels import THRESHOLD, RegionMapping
from autolung.output_kind import OutputKind, output_kind_for_activation
from autolung.planning.plans import ConfigurationPlan
from autolung.preprocessing.crop import is_full_bbox
from autolung.preprocessing.resampling import axis_orders, resample_volume


def restores_logits(configuration: ConfigurationPlan, properties: dict[str, Any]) -> bool:
    """Whether a case's network output is restored as averaged logits rather than probabilities.

    The predictor asks this before the sliding window, which then leaves the activation to the
    restore functions (their ``logits`` argument). True for configurations that average logits
    (imported nnU-Net models) on a case that is resampled or cropped, where nnU-Net resamples
    logits; on the original grid the two orders give the same labels.

    Args:
        configuration: the configuration the case is predicted with.
        properties: the case properties from preprocessing.

    Returns:
        True when the logits are to be kept past the sliding window.
    """
    inference = configuration.inference
    return inference is not None and inference.average_logits and not on_original_grid(properties)


def iter_restored_channels(probabilities: np.ndarray, properties: dict[str, Any],
                           configuration: ConfigurationPlan, order: int = 1,
                           transform: Callable[[np.ndarray], np.ndarray] | None = None
                           ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(channel index, float32 (Z, Y, X) on the original grid)`` one channel at a time.

    Args:
        probabilities: ``(R, Z', Y', X')`` on the preprocessed grid (float32, or anything castable).
        properties: the case properties from ``preprocess_case``.
        configuration: the configuration the case was preprocessed with: an imported model's
            inference plan may set the order along the anisotropic axis.
        order: interpolation order in-plane (1 linear, 3 cubic); along an anisotropic axis
            linear at most, since a spline overshoots across few thick slices, or the inference
            plan's ``probability_order_out_of_plane`` (nnU-Net's nearest slice).
        transform: applied in place to each channel inside the crop box once resampled, before
            the zeros outside it are added (``OutputKind.label_scores`` for logits).

    Returns:
        An iterator; each yielded array is new and owned by the caller.
    """
    expected = tuple(properties["shape_after_resampling"])
    if tuple(probabilities.shape[1:]) != expected:
        raise ValueError(f"probabilities have spatial shape {tuple(probabilities.shape[1:])}, "
                         f"the case was preprocessed to {expected}")
    cropped_shape = tuple(properties["shape_after_crop"])
    full_shape = tuple(properties["shape_before_crop"])
    bbox = properties["crop_bbox"]
    across = (configuration.inference.probability_order_out_of_plane if configuration.inference is not None
              else None)
    orders = axis_orders(properties.get("anisotropic_axis"), order, min(order, 1) if across is None else across)
    region = tuple(slice(lo, hi) for lo, hi in bbox)
    for channel in range(probabilities.shape[0]):
        source = np.asarray(probabilities[channel], dtype=np.float32)
        if is_full_bbox(bbox, full_shape):
            restored = resample_volume(source, cropped_shape, orders)
            # Unchanged shape: resample_volume returned a view of the input; hand out a copy.
            restored = restored.copy() if np.may_share_memory(restored, probabilities) else restored
            yield channel, restored if transform is None else transform(restored)
            continue
        full = np.zeros(full_shape, dtype=np.float32)
        # The last resampling pass writes straight into the crop box: no cropped-size copy.
        resample_volume(source, cropped_shape, orders, out=full[region])
        if transform is not None:
            transform(full[region])
        yield channel, full


def restore_to_original(probabilities: np.ndarray, properties: dict[str, Any], configuration: ConfigurationPlan,
                        order: int = 1, logits: bool = False) -> np.ndarray:
    """Resample per-region output back to the original image grid.

    Args:
        probabilities: ``(R, Z', Y', X')`` on the preprocessed grid.
        properties: the case properties.
        configuration: the configuration plan.
        order: interpolation order (1 linear, 3 cubic).
        logits: ``probabilities`` are averaged logits (:func:`restores_logits`): resampled, then
            activated with the configuration's output activation.

    Returns:
        float32 probabilities ``(R, *original shape)``, zero outside the crop box.
    """
    full_shape = tuple(properties["shape_before_crop"])
    out = np.empty((probabilities.shape[0], *full_shape), dtype=np.float32)
    for channel, restored in iter_restored_channels(probabilities, properties, configuration, order):
        out[channel] = restored
        del restored  # before the generator allocates the next channel
    if logits:
        _activate(out[(slice(None), *(slice(lo, hi) for lo, hi in properties["crop_bbox"]))], configuration)
    return out


def _activate(logits: np.ndarray, configuration: ConfigurationPlan) -> None:
    """Replace ``(R, Z, Y, X)`` logits by the configuration's probabilities, in place, a slab at a time."""
    import torch

    kind = _logit_kind(configuration)
    for start in range(0, logits.shape[1], LABEL_SLAB):
        slab = logits[:, start:start + LABEL_SLAB]
        slab[...] = kind.probabilities(torch.from_numpy(np.ascontiguousarray(slab)), channel_axis=0).numpy()


def _logit_kind(configuration: ConfigurationPlan) -> OutputKind:
    """The output kind whose activation turns ``configuration``'s averaged logits into probabilities."""
    if configuration.inference is None:
        raise ValueError("logits are restored only for configurations with an inference plan (average_logits)")
    return output_kind_for_activation(configuration.inference.output_activation)


def restore_label_map(probabilities: np.ndarray, properties: dict[str, Any], configuration: ConfigurationPlan,
                      region_mapping: RegionMapping, order: int = 1, logits: bool = False) -> np.ndarray:
    """Label map on the original grid, built channel by channel (never all regions at once).

    Same rule as :meth:`RegionMapping.probabilities_to_labels`: disjoint regions take the most
    probable channel when it reaches 0.5; nested regions paint in order.

    Args:
        probabilities: ``(R, Z', Y', X')`` probabilities on the preprocessed grid.
        properties: the case properties.
        configuration: the configuration plan.
        region_mapping: how channels map to labels.
        order: interpolation order.
        logits: ``probabilities`` are averaged logits (:func:`restores_logits`), resampled before
            the label rule is applied (``OutputKind.label_scores``).

    Returns:
        uint8 ``(*original shape)``.
    """
    full_shape = tuple(properties["shape_before_crop"])
    scores = _logit_kind(configuration).label_scores if logits else None
    if _on_original_grid(probabilities, properties):
        # Nothing to resample or uncrop: paint slab by slab, with no full-size float32 copy.
        labels = np.empty(full_shape, dtype=np.uint8)
        for start in range(0, full_shape[0], LABEL_SLAB):
            stop = min(start + LABEL_SLAB, full_shape[0])
            slab = ((channel, _slab_scores(probabilities[channel, start:stop], scores))
                    for channel in range(probabilities.shape[0]))
            labels[start:stop] = _paint_labels(slab, (stop - start, *full_shape[1:]), region_mapping)
        return labels
    return _paint_labels(iter_restored_channels(probabilities, properties, configuration, order, scores),
                         full_shape, region_mapping)


def _slab_scores(values: np.ndarray, scores: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
    """A float32 slab of one channel, through ``scores`` (on a copy, never the caller's array) when given."""
    if scores is None:
        return np.asarray(values, dtype=np.float32)
    return scores(np.array(values, dtype=np.float32))


# Slices per slab when the label map is painted straight from the network grid.
LABEL_SLAB = 16


def on_original_grid(properties: dict[str, Any]) -> bool:
    """Whether a case's network grid is its original grid: nothing was cropped or resampled.

    Then its labels need no restoring: the predictor paints them as the sliding window's slabs
    finish (:func:`autolung.inference.case_prediction.predict_preprocessed_case_labels`).

    Args:
        properties: the case properties from preprocessing.

    Returns:
        True when the network grid's labels are the original grid's.
    """
    full_shape = tuple(properties["shape_before_crop"])
    return (tuple(properties["shape_after_crop"]) == full_shape
            and tuple(properties["shape_after_resampling"]) == full_shape
            and is_full_bbox(properties["crop_bbox"], full_shape))


def _on_original_grid(probabilities: np.ndarray, properties: dict[str, Any]) -> bool:
    return tuple(probabilities.shape[1:]) == tuple(properties["shape_before_crop"]) and on_original_grid(properties)


def _paint_labels(channels: Iterator[tuple[int, np.ndarray]], shape: tuple[int, ...],
                  region_mapping: RegionMapping) -> np.ndarray:
    """uint8 labels of ``shape`` from ``(channel, probabilities)`` pairs, one channel at a time."""
    labels = np.zeros(shape, dtype=np.uint8)
    # With a background channel (softmax) the most probable channel wins outright: no threshold.
    floor = -np.inf if region_mapping.has_background_channel else THRESHOLD
    best = np.full(shape, floor, dtype=np.float32) if region_mapping.is_disjoint else None
    for channel, restored in channels:
        paint = region_mapping.paint_labels[channel]
        if best is None:
            labels[restored >= THRESHOLD] = paint
            del restored
            continue
        # ">=" for the first channel keeps "at least 0.5"; later channels must beat the best so far.
        wins = restored >= best if channel == 0 else restored > best
        labels[wins] = paint
        np.maximum(best, restored, out=best)
        del restored, wins  # before the generator allocates the next channel
    return labels
