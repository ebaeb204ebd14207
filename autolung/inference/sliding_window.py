"""Sliding-window prediction of a whole preprocessed case with one or more networks.

The case is tiled with overlapping patches (default overlap: half a patch). Each patch's sigmoid
output is weighted by a Gaussian importance map (sigma = 1/8 of the patch, as in nnU-Net), so
voxels near a patch border, where the network sees little context, count less. Windows run in Z
order, and their weighted outputs are summed in a float32 slab one window deep: once no later
window reaches a slice, it is divided by its weight sums and written into the output, float32 or
float16 (``probability_dtype``). Peak memory is the input, the output and that slab, whatever the
number of windows, mirrorings or folds. autolung's Gaussian is a product of one factor per axis
and the windows form a grid, so its weight sums are the product of three per-axis profiles;
nnU-Net's truncated Gaussian (imported models) gets a window-deep weight slab too.

The input may be bfloat16 when the networks run in bfloat16 autocast (:func:`window_input`):
autocast casts every window to bfloat16 before the first convolution anyway.

2D configurations (patch of two values) run slice by slice along Z: a window is ``(1, py, px)``
and the network receives ``(B, C, py, px)``.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from autolung.inference.slab_sinks import (BodyRestriction, Destination, LabelSink, ProbabilitySink, SlabSink,
                                          zero_probabilities)
from autolung.inference.slab_stream import SlabNormaliser, ZStream
from autolung.inference.window_grid import separable_weight_sums, window_starts, window_weights
from autolung.labels import RegionMapping
from autolung.output_kind import ACTIVATIONS, SIGMOID_REGIONS, OutputKind, output_kind_for_activation
from autolung.utils.precision import (bf16_matches_float32, convolution_shapes, cpu_has_native_bf16,
                                     warn_if_emulated_bf16)

logger = logging.getLogger(__name__)

ALL_AXES = (0, 1, 2)
PRECISIONS = ("float32", "bfloat16")
PROBABILITY_DTYPES = ("float32", "float16")


def resolve_precision(precision: str, device: str | torch.device,
                      network: nn.Module | None = None) -> str:
    """Turn "auto" into a concrete precision for ``device``.

    "auto" picks bfloat16 autocast where the hardware runs it natively (CUDA; CPUs with
    AVX-512-BF16 or AMX, checked through oneDNN), since it roughly halves CPU time per window
    (docs/inference.md), and float32 elsewhere. With ``network`` given, bfloat16 is first
    checked against float32 on its convolution shapes (once per process,
    :func:`autolung.utils.precision.bf16_matches_float32`) and float32 is used when they
    disagree. Accumulation is float32 in every case.

    Args:
        precision: "auto", "float32" or "bfloat16".
        device: the torch device that runs the networks.
        network: the network whose convolutions the bfloat16 check reproduces.

    Returns:
        "float32" or "bfloat16".
    """
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be auto or one of {PRECISIONS}, got {precision!r}")
        if precision == "bfloat16":
            warn_if_emulated_bf16(torch.device(device).type)
        return precision
    kind = torch.device(device).type
    native = (kind == "cuda" and torch.cuda.is_bf16_supported()) or (kind == "cpu" and cpu_has_native_bf16())
    if not native:
        return "float32"
    if network is not None and not bf16_matches_float32(tuple(convolution_shapes(network)), kind):
        return "float32"
    return "bfloat16"


def memory_format_for(precision: str, device: torch.device, is_2d: bool) -> torch.memory_format:
    """The memory layout of the networks and windows: channels-last for 3D networks in bfloat16 on a CPU.

    bfloat16 on a CPU means native bfloat16 (:func:`resolve_precision` picks it only there), where
    oneDNN's convolutions work in channels-last and a contiguous tensor is reordered before and
    after each one (docs/benchmarks.md, nnunet_models: measured per network). float32, 2D networks
    and GPUs keep the contiguous layout, where no gain was measured.

    Args:
        precision: the resolved precision.
        device: the networks' device.
        is_2d: whether the networks are 2D.

    Returns:
        ``torch.channels_last_3d`` or ``torch.contiguous_format``.
    """
    if precision == "bfloat16" and device.type == "cpu" and not is_2d:
        return torch.channels_last_3d
    return torch.contiguous_format


def window_input(data: np.ndarray | torch.Tensor, precision: str) -> torch.Tensor:
    """The case as the sliding window cuts its windows: bfloat16 when ``precision`` is bfloat16.

    bfloat16 autocast casts every window to bfloat16 before the first convolution, so storing the
    case in bfloat16 changes no prediction and halves the largest input array. Callers that own
    the float32 case drop it after this call.

    Args:
        data: preprocessed case ``(C, Z, Y, X)``.
        precision: the resolved precision (:func:`resolve_precision`), "float32" or "bfloat16".

    Returns:
        A bfloat16 tensor for "bfloat16", else a float32 tensor (sharing ``data``'s memory
        where it already is one).
    """
    return _as_tensor(data).to(torch.bfloat16 if precision == "bfloat16" else torch.float32)


def _as_tensor(data: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data)


def _input_tensor(data: np.ndarray | torch.Tensor, precision: str) -> torch.Tensor:
    """``data`` as a tensor: bfloat16 kept (only in bfloat16 precision), anything else float32."""
    tensor = _as_tensor(data)
    if tensor.dtype == torch.bfloat16 and precision != "bfloat16":
        raise ValueError(f"a bfloat16 case can only be predicted in bfloat16 precision, not {precision}")
    return tensor if tensor.dtype == torch.bfloat16 else tensor.float()


def _pad_to_patch(data: torch.Tensor, patch: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Pad (C, Z, Y, X) symmetrically with zeros where smaller than ``patch``; return the crop back."""
    pads, crop = [], []
    for size, length in zip(data.shape[1:], patch):
        total = max(0, length - size)
        before = total // 2
        pads.append((before, total - before))
        crop.append(slice(before, before + size))
    if not any(sum(p) for p in pads):
        return data, tuple(crop)
    # torch's pad takes the last axis first.
    flat = [v for pair in reversed(pads) for v in pair]
    return torch.nn.functional.pad(data, flat, mode="constant", value=0.0), tuple(crop)


# Samples per network call below which float32 convolutions may leave oneDNN (samples_per_call).
MIN_CALL_BATCH = 2


# Feature-map bytes of one network call's samples above which a call carries a single sample.
CALL_FEATURE_BYTES = 256 * 2 ** 20


def samples_per_call(network: nn.Module, patch: Sequence[int], precision: str) -> int:
    """Samples per network call (windows, or mirrorings of one window) when the user does not say.

    :data:`MIN_CALL_BATCH` (2) where two samples' feature maps take at most
    :data:`CALL_FEATURE_BYTES`, as the network reports them (``feature_map_elements``; 2 bytes
    per element in bfloat16, 4 in float32); 1 above, where a second sample mostly adds memory.
    Networks that do not report their feature maps get 2.

    Measured on 2-core EPYCs (docs/inference.md): in bfloat16 (AVX-512 BF16) 2 windows per call
    beat 1 (31 s against 40 s for the same crop). In float32 on one AVX2 core, a call of one
    sample can fall off oneDNN onto PyTorch's generic convolution: the half-width U-Net on a
    6x48x48 LIDC window took 185 ms alone and 38 ms per window two at a time; on 40x48x32 177
    against 144 ms, on nnU-Net's 40x56x40 plan 702 against 607 ms, on 20x80x80 400 against 403 ms.
    Larger batches gained nothing more (and 4 windows of 40x56x40 took 878 ms each). For large
    windows one sample per call costs little time and saves the network's working memory
    (docs/benchmarks.md, "Whole chest CT on a CPU").

    Args:
        network: the first network that predicts.
        patch: the window shape, 3 values (a 2D network's ``(1, py, px)``) or the network's own.
        precision: the resolved precision, "float32" or "bfloat16".

    Returns:
        1 or 2.
    """
    report = getattr(network, "feature_map_elements", None)
    if report is None:
        return MIN_CALL_BATCH
    dims = getattr(getattr(network, "arch", None), "dim", len(patch))
    elements = int(report(list(patch)[-dims:]))
    per_sample = elements * (2 if precision == "bfloat16" else 4)
    return MIN_CALL_BATCH if MIN_CALL_BATCH * per_sample <= CALL_FEATURE_BYTES else 1


def _batches(items: list, size: int) -> Iterator[list]:
    for begin in range(0, len(items), size):
        yield items[begin:begin + size]


def mirror_combinations(mirror_axes: Sequence[int] | None, is_2d: bool) -> list[tuple[int, ...]]:
    """All subsets of the mirror axes, as tensor dims of a ``(B, R, *spatial)`` network batch.

    Args:
        mirror_axes: array axes (0=z, 1=y, 2=x) to mirror, or None/empty for no test-time mirroring.
        is_2d: 2D networks see (y, x) only, so the z axis is dropped.

    Returns:
        List of dim tuples to flip, the first being ``()`` (the unmirrored pass).
    """
    axes = [] if not mirror_axes else sorted(set(int(a) for a in mirror_axes))
    if is_2d:
        dims = [a + 1 for a in axes if a in (1, 2)]  # y -> dim 2, x -> dim 3 of (B, C, Y, X)
    else:
        dims = [a + 2 for a in axes if a in ALL_AXES]
    return [combo for r in range(len(dims) + 1) for combo in itertools.combinations(dims, r)]


def _forward(network: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    output = network(batch)
    # Deep-supervision networks return the full-resolution output first.
    if isinstance(output, (list, tuple)):
        output = output[0]
    return output


def _flip_groups(flips: list[tuple[int, ...]], windows: int, call_samples: int) -> list[list[tuple[int, ...]]]:
    """The mirrorings run together in one network call, so that a call carries at least
    ``call_samples`` samples when a batch holds fewer windows (see :func:`samples_per_call`)."""
    per_call = max(1, -(-call_samples // max(1, windows)))
    return [flips[begin:begin + per_call] for begin in range(0, len(flips), per_call)]


def _predict_batch(networks: Sequence[nn.Module], batch: torch.Tensor, flips: list[tuple[int, ...]],
                   precision: str, average_logits: bool = False, call_samples: int = MIN_CALL_BATCH) -> torch.Tensor:
    """Sum over networks and mirrorings of the sigmoid outputs (or raw logits) of one window batch (float32)."""
    total: torch.Tensor | None = None
    windows = batch.shape[0]
    autocast = torch.autocast(device_type=batch.device.type, dtype=torch.bfloat16,
                              enabled=precision == "bfloat16")
    with autocast:
        for network in networks:
            for group in _flip_groups(flips, windows, call_samples):
                inputs = torch.cat([torch.flip(batch, dims) if dims else batch for dims in group])
                outputs = _forward(network, inputs).float()
                if not average_logits:
                    outputs = torch.sigmoid(outputs)
                for index, dims in enumerate(group):
                    probs = outputs[index * windows:(index + 1) * windows]
                    if dims:
                        probs = torch.flip(probs, dims)
                    total = probs.clone() if total is None else total + probs
    assert total is not None
    return total


def predict_sliding_window(
    networks: Sequence[nn.Module] | nn.Module,
    data: torch.Tensor | np.ndarray,
    patch_size: Sequence[int],
    step_size: float = 0.5,
    mirror_axes: Sequence[int] | None = ALL_AXES,
    window_batch_size: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "float32",
    progress: object | None = None,
    average_logits: bool = False,
    output_activation: str = "sigmoid",
    weights: str = "autolung",
    body_threshold: float | None = None,
    crop_to_body: bool = False,
    skip_empty_windows: bool = False,
    restrict_to_body: bool = False,
    probability_dtype: str = "float32",
    keep_logits: bool = False,
) -> np.ndarray:
    """Sigmoid probabilities of a whole case, averaged over networks (folds) and mirrorings.

    Imported nnU-Net models instead average raw logits and apply their activation (sigmoid, or
    softmax over the channel axis) once at the end, as nnU-Net does (``average_logits``).

    With ``crop_to_body`` or ``skip_empty_windows`` (see :mod:`autolung.inference.levers`) the
    network runs only where the body is; elsewhere the probabilities are 0 (background). The
    returned array always has the shape of ``data``.

    Args:
        networks: one network or several (e.g. folds); each maps ``(B, C, *patch)`` to
            ``(B, R, *patch)`` logits (or a list whose first entry is that).
        data: preprocessed case ``(C, Z, Y, X)``, float32, or bfloat16 from :func:`window_input`
            when ``precision`` resolves to bfloat16.
        patch_size: ``(pz, py, px)`` for 3D networks, ``(py, px)`` for 2D networks (run per Z slice).
        step_size: window stride as a fraction of the patch; smaller is slower and smoother.
        mirror_axes: array axes (0=z, 1=y, 2=x) mirrored at test time; None or () disables it.
        window_batch_size: windows passed through the network together; None picks
            :func:`samples_per_call` for the network, patch and resolved precision.
        device: torch device for the networks (moved there), windows and the window-deep sums; the
            output is on the CPU.
        precision: "float32", "bfloat16" (autocast; accumulation is always float32) or "auto"
            (see :func:`resolve_precision`).
        progress: optional callable ``progress(done, total)`` called after each batch.
        average_logits: average raw outputs, then apply ``output_activation``.
        output_activation: "sigmoid" or "softmax" (only with ``average_logits``).
        weights: window weights, "autolung" or "nnunet" (:func:`window_weights`).
        body_threshold: channel-0 intensity above which a voxel is tissue
            (:func:`autolung.inference.levers.body_threshold`); needed by the two body levers.
        crop_to_body: tile only the body's bounding box; outside it the probabilities are 0.
        skip_empty_windows: do not run windows that hold no body voxel.
        restrict_to_body: probability 0 outside the body mask (slices whose body touches the image
            border excepted).
        probability_dtype: "float32" or "float16" (half the output's memory; rounding below
            2.5e-4, see :func:`autolung.inference.case_prediction.probability_dtype_for`).
        keep_logits: with ``average_logits``, return the averaged logits without the activation,
            for a caller that resamples them first (nnU-Net's order); voxels no window predicted
            (body levers) hold ``OutputKind.background_logits``.

    Returns:
        Array ``(R, Z, Y, X)`` of probabilities in [0, 1] (or averaged logits), of ``probability_dtype``.
    """
    if probability_dtype not in PROBABILITY_DTYPES:
        raise ValueError(f"probability_dtype must be one of {PROBABILITY_DTYPES}, got {probability_dtype!r}")
    return _predict_into(lambda spatial, empty: ProbabilitySink(spatial, np.dtype(probability_dtype), empty),
                         networks, data, patch_size, step_size=step_size, mirror_axes=mirror_axes,
                         window_batch_size=window_batch_size, device=device, precision=precision,
                         progress=progress, average_logits=average_logits, output_activation=output_activation,
                         weights=weights, body_threshold=body_threshold, crop_to_body=crop_to_body,
                         skip_empty_windows=skip_empty_windows, restrict_to_body=restrict_to_body,
                         keep_logits=keep_logits)


def predict_sliding_window_labels(networks: Sequence[nn.Module] | nn.Module, data: torch.Tensor | np.ndarray,
                                  patch_size: Sequence[int], region_mapping: RegionMapping,
                                  **options: object) -> np.ndarray:
    """The label map of :func:`predict_sliding_window`'s probabilities, painted as slabs finish.

    The probabilities are never held for the whole volume: each finished float32 slab becomes
    labels at once (:class:`~autolung.inference.slab_sinks.LabelSink`, the rule of
    :meth:`RegionMapping.probabilities_to_labels`), so peak memory is the input, the uint8 labels
    and one window-deep slab.

    Args:
        networks: as :func:`predict_sliding_window`.
        data: as :func:`predict_sliding_window`.
        patch_size: as :func:`predict_sliding_window`.
        region_mapping: how the output channels map to labels.
        **options: :func:`predict_sliding_window`'s other keyword arguments, except
            ``probability_dtype`` and ``keep_logits``.

    Returns:
        uint8 labels ``(Z, Y, X)``, the shape of ``data``.
    """
    for name in ("probability_dtype", "keep_logits"):
        if name in options:
            raise ValueError(f"{name}: labels are painted from float32 probability slabs, nothing else is kept")
    return _predict_into(lambda spatial, empty: LabelSink(spatial, region_mapping), networks, data, patch_size,
                         **options)  # type: ignore[arg-type]


@torch.inference_mode()
def _predict_into(make_sink: Callable[[tuple[int, ...], Callable[[int], np.ndarray]], SlabSink], networks: Sequence[nn.Module] | nn.Module,
                  data: torch.Tensor | np.ndarray, patch_size: Sequence[int], step_size: float = 0.5,
                  mirror_axes: Sequence[int] | None = ALL_AXES, window_batch_size: int | None = None,
                  device: str | torch.device = "cpu", precision: str = "float32", progress: object | None = None,
                  average_logits: bool = False, output_activation: str = "sigmoid", weights: str = "autolung",
                  body_threshold: float | None = None, crop_to_body: bool = False, skip_empty_windows: bool = False,
                  restrict_to_body: bool = False, keep_logits: bool = False) -> np.ndarray:
    """:func:`predict_sliding_window` into the sink ``make_sink(spatial shape, empty values)`` builds; its result."""
    kind = output_kind_for_activation(output_activation)
    if kind != SIGMOID_REGIONS and not average_logits:
        # Without it each network's outputs get a sigmoid (see OutputKind.prediction_network).
        raise ValueError(f"output_activation {output_activation!r} needs average_logits for softmax; "
                         f"known: {', '.join(ACTIVATIONS)}")
    if keep_logits and not average_logits:
        raise ValueError("keep_logits needs average_logits: without it each window's outputs are probabilities")
    empty = kind.background_logits if keep_logits else zero_probabilities
    networks = [networks] if isinstance(networks, nn.Module) else list(networks)
    if not networks:
        raise ValueError("no networks given")
    precision = resolve_precision(precision, device, networks[0])
    tensor = _input_tensor(data, precision)
    if tensor.ndim != 4:
        raise ValueError(f"data must be (C, Z, Y, X), got shape {tuple(tensor.shape)}")
    is_2d = len(patch_size) == 2
    patch = (1, *patch_size) if is_2d else tuple(patch_size)
    device = torch.device(device)
    layout = memory_format_for(precision, device, is_2d)
    for network in networks:
        network.to(device, memory_format=layout)
        network.eval()
    flips = mirror_combinations(mirror_axes, is_2d)
    call_samples = samples_per_call(networks[0], patch, precision)
    if window_batch_size is None:
        window_batch_size = call_samples
    outputs = {"average_logits": average_logits, "output_kind": kind, "weights": weights,
               "call_samples": call_samples, "keep_logits": keep_logits, "layout": layout}
    body = _body_mask(tensor, body_threshold, crop_to_body or skip_empty_windows or restrict_to_body, precision)
    box = _body_box(body, patch) if crop_to_body and body is not None else None
    box = box or tuple(slice(0, n) for n in tensor.shape[1:])
    sink = make_sink(tuple(tensor.shape[1:]), empty)
    # The crop's finished slabs go straight into the whole volume's result: no second copy.
    destination = Destination(sink, tuple(s.start for s in box),
                              BodyRestriction(body, empty) if restrict_to_body and body is not None else None)
    _tile(networks, tensor[(slice(None), *box)], body[box] if skip_empty_windows and body is not None else None,
          patch, step_size, flips, window_batch_size, device, precision, is_2d, progress, outputs, destination)
    return sink.result()


def _body_mask(tensor: torch.Tensor, threshold: float | None, wanted: bool, precision: str) -> np.ndarray | None:
    """The body mask of channel 0 when a body lever is on; None (whole volume) when none can be found."""
    if not wanted:
        return None
    if threshold is None:
        logger.warning("crop_to_body/skip_empty_windows need CT intensities (ct normalization); "
                       "the whole volume is tiled")
        return None
    from autolung.inference.levers import body_mask

    # Thresholded as the windows hold it (bfloat16 or float32), so a bfloat16 input from
    # window_input gives the same mask as float32 data predicted in bfloat16.
    mask = body_mask(tensor[0], threshold, torch.bfloat16 if precision == "bfloat16" else torch.float32)
    if not mask.any():
        logger.warning("no voxel above the body threshold: is this a CT in Hounsfield units? "
                       "The whole volume is tiled")
        return None
    return mask


def _body_box(body: np.ndarray, patch: tuple[int, ...]) -> tuple[slice, ...] | None:
    from autolung.inference.levers import body_box

    box = body_box(body, patch)
    if box is not None:
        kept = np.prod([s.stop - s.start for s in box]) / body.size
        logger.info("body crop %s: %.0f%% of the volume tiled", [(s.start, s.stop) for s in box], 100 * kept)
    return box


def _tile(networks: list[nn.Module], tensor: torch.Tensor, body: np.ndarray | None, patch: tuple[int, ...],
          step_size: float, flips: list[tuple[int, ...]], window_batch_size: int, device: torch.device,
          precision: str, is_2d: bool, progress: object | None, outputs: dict, destination: Destination) -> None:
    """Pad ``tensor`` to at least ``patch``, run the windows (those touching ``body`` when given).

    ``outputs`` holds :func:`_run_windows`'s ``average_logits``, ``output_kind``, ``weights``,
    ``call_samples``, ``keep_logits`` and ``layout``; the finished slabs, unpadded, go to ``destination``.
    """
    padded, crop = _pad_to_patch(tensor, patch)
    if body is not None and padded.shape[1:] != body.shape:
        # Padding is outside the body.
        padded_body = np.zeros(padded.shape[1:], dtype=bool)
        padded_body[crop] = body
        body = padded_body
    _run_windows(networks, padded, patch, step_size, flips, window_batch_size, device, precision, is_2d, progress,
                 destination.writer(crop), body, **outputs)


def _run_windows(networks: list[nn.Module], data: torch.Tensor, patch: tuple[int, ...], step_size: float,
                 flips: list[tuple[int, ...]], window_batch_size: int, device: torch.device, precision: str,
                 is_2d: bool, progress: object | None, write: Callable[[int, np.ndarray], None],
                 body: np.ndarray | None = None, average_logits: bool = False,
                 output_kind: OutputKind = SIGMOID_REGIONS, weights: str = "autolung",
                 call_samples: int = MIN_CALL_BATCH, keep_logits: bool = False,
                 layout: torch.memory_format = torch.contiguous_format) -> None:
    """Tile ``data`` (already at least ``patch``), accumulate weighted outputs, normalise, ``write``.

    With ``body``, windows without a body voxel are skipped; voxels no window covers get
    probability 0 (also when logits are averaged; with ``keep_logits`` the kind's background logits).
    """
    spatial = tuple(data.shape[1:])
    windows = window_starts(spatial, patch, step_size)
    if body is not None:
        total = len(windows)
        windows = [w for w in windows if body[w].any()]
        # Never empty: the body is not empty and the windows cover the volume.
        logger.info("%d of %d windows skipped (no body voxel)", total - len(windows), total)
    # autolung's Gaussian is separable: the weight sums are three profiles, not a volume. A skipped
    # window then counts as predicting probability 0, which a voxel no run window covers gets.
    separable = weights == "autolung" and not average_logits
    normalise = SlabNormaliser(len(networks) * len(flips), output_kind if average_logits else None,
                                separable_weight_sums(spatial, patch, step_size) if separable else None, keep_logits)
    gaussian = torch.from_numpy(window_weights(patch, weights)).to(device)
    stream: ZStream | None = None
    done = 0
    for batch_windows in _batches(windows, max(1, window_batch_size)):
        batch = torch.stack([data[(slice(None), *w)] for w in batch_windows]).to(device, memory_format=layout)
        if is_2d:
            batch = batch[:, :, 0]  # (B, C, 1, Y, X) -> (B, C, Y, X)
        probs = _predict_batch(networks, batch, flips, precision, average_logits, call_samples)
        if is_2d:
            probs = probs[:, :, None]
        if stream is None:
            stream = ZStream((probs.shape[1], *spatial), patch[0], device, not separable, normalise, write)
        for window, window_probs in zip(batch_windows, probs):
            stream.add(window, window_probs, gaussian)
        done += len(batch_windows)
        if progress is not None:
            progress(done, len(windows))
    assert stream is not None
    stream.close()
