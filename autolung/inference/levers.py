"""Prediction modes and the speed levers they set: where the body is, which windows run, mirroring, stride.

Two named modes:

* ``full``: the reference, today's behaviour since the first release: every mirroring (8 passes in
  3D), step 0.5, the whole volume tiled, no window skipped.
* ``fast``: the body crop, window skipping and background outside the body (see below), no
  test-time mirroring, step 0.75. Measured on whole NSCLC chest CTs in docs/benchmarks.md.

``auto`` picks one per device (:data:`DEFAULT_MODE_BY_DEVICE`), and every lever can still be set
on its own; :func:`resolve_levers` says which came from where, and the predictor logs it.

Body crop: on CT (``ct`` normalization) voxels above :data:`BODY_THRESHOLD_HU` are tissue; each
axial slice's tissue is hole-filled (the lungs, darker than the threshold, lie inside the chest
wall) to give the body mask. The crop is the body's bounding box plus a margin, grown to at least
one patch, on the network grid; the sliding window tiles only the crop and everything outside is
background (probability 0). The predictor restores the full network grid before resampling, so
the mask keeps the input's exact geometry.

Window skipping: windows that hold no body voxel (all air around the body) are not run; a voxel
no run window covers is background, a voxel that only run windows cover gets exactly the value
the full tiling gives it.

Background outside the body (``restrict_to_body``): every voxel outside the body mask is
background. Air around the patient is as dark as lung, and a model trained on few scans calls it
lung (docs/benchmarks.md: on a held-out NSCLC scan 55% of a 2-scan model's lung voxels lay outside
the body). A slice whose body touches the image border may be cut by the field of view, so that
its lungs are not enclosed and hole filling would miss them: such slices are not restricted.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

logger = logging.getLogger(__name__)

MODES = ("auto", "full", "fast")
ALL_AXES = (0, 1, 2)
# Air is about -1000 HU, fat about -100, lung parenchyma -700 to -900 (inside the body, filled).
BODY_THRESHOLD_HU = -500.0
# Voxels of context kept around the body's bounding box on the network grid.
BODY_MARGIN = 4
# In-plane extent (mm) below which an image is taken for a crop (a lesion's surroundings, a
# patch of lung) rather than a whole body section: the body levers would treat the lung
# parenchyma around a ground-glass lesion as air outside the body.
MIN_BODY_SECTION_MM = 200.0


@dataclass(frozen=True)
class Levers:
    """Concrete prediction settings.

    Attributes:
        step_size: window stride as a fraction of the patch.
        mirror_axes: array axes (0=z, 1=y, 2=x) mirrored at test time; () for none.
        crop_to_body: tile only the body's bounding box (CT only).
        skip_empty_windows: do not run windows without a body voxel (CT only).
        restrict_to_body: background outside the body mask (CT only).
    """

    step_size: float
    mirror_axes: tuple[int, ...]
    crop_to_body: bool
    skip_empty_windows: bool
    restrict_to_body: bool = False


MODE_LEVERS = {
    "full": Levers(step_size=0.5, mirror_axes=ALL_AXES, crop_to_body=False, skip_empty_windows=False,
                   restrict_to_body=False),
    "fast": Levers(step_size=0.75, mirror_axes=(), crop_to_body=True, skip_empty_windows=True,
                   restrict_to_body=True),
}

# "auto" on each device type. GPUs run every mirroring of a whole CT in seconds; on a CPU the
# choice follows the whole-CT benchmark (docs/benchmarks.md, benchmarks/whole_ct.py).
DEFAULT_MODE_BY_DEVICE = {"cpu": "fast", "cuda": "full", "mps": "full"}
DEFAULT_MODE_REASON = {
    "cpu": "the CPU default: on a held-out whole NSCLC chest CT fast took about a minute against full's 26 "
           "with a 3D model (3% of its network passes), at mean Dice 0.44 against 0.29, and 23 s against 204 s "
           "with a 2D model, at 0.48 against 0.33 (docs/benchmarks.md); mode full is the reference",
    "cuda": "the GPU default: every mirroring costs seconds there",
    "mps": "the GPU default: every mirroring costs seconds there",
}


@dataclass(frozen=True)
class ResolvedLevers:
    """Levers chosen for one run, with the reasons, for the log and the predictions record.

    Attributes:
        mode: "full" or "fast".
        levers: the settings used.
        reasons: one line per decision.
    """

    mode: str
    levers: Levers
    reasons: list[str] = field(default_factory=list)

    def explain(self) -> str:
        """One log line: mode, every lever, and why."""
        lever = self.levers
        settings = (f"step_size={lever.step_size}, mirror_axes={list(lever.mirror_axes)}, "
                    f"crop_to_body={lever.crop_to_body}, skip_empty_windows={lever.skip_empty_windows}, "
                    f"restrict_to_body={lever.restrict_to_body}")
        return f"prediction mode {self.mode} ({settings}): " + "; ".join(self.reasons)

    def record(self) -> dict:
        """The settings as JSON-ready values."""
        lever = self.levers
        return {"mode": self.mode, "step_size": lever.step_size, "mirror_axes": list(lever.mirror_axes),
                "crop_to_body": lever.crop_to_body, "skip_empty_windows": lever.skip_empty_windows,
                "restrict_to_body": lever.restrict_to_body}


def resolve_levers(mode: str, device_type: str, step_size: float | None = None,
                   mirror_axes: Sequence[int] | None = None, crop_to_body: bool | None = None,
                   skip_empty_windows: bool | None = None,
                   restrict_to_body: bool | None = None, whole_body_ct: bool = True) -> ResolvedLevers:
    """The mode's levers, with any lever given explicitly taking precedence.

    Args:
        mode: "auto", "full" or "fast".
        device_type: "cpu", "cuda", ...; decides what "auto" means.
        step_size: overrides the mode's stride when not None.
        mirror_axes: overrides the mode's mirroring when not None (() disables it).
        crop_to_body: overrides the mode's body crop when not None.
        skip_empty_windows: overrides the mode's window skipping when not None.
        restrict_to_body: overrides the mode's background outside the body when not None.
        whole_body_ct: whether the models are CT models of whole body sections
            (:func:`is_whole_body_ct`); "auto" picks ``fast`` on a CPU only for those, where it was
            measured.

    Returns:
        The resolved levers and why each was chosen.

    Raises:
        ValueError: an unknown mode, a step size outside (0, 1] or a mirror axis outside 0-2.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    reasons = []
    if mode == "auto":
        mode = DEFAULT_MODE_BY_DEVICE.get(device_type, "full")
        reason = DEFAULT_MODE_REASON.get(device_type, "no measured default for this device")
        if mode == "fast" and not whole_body_ct:
            mode, reason = "full", ("fast mode was measured on whole-body CT only, and these models are not "
                                    "CT models of whole body sections")
        reasons.append(f"mode auto on {device_type}: {mode}, {reason}")
    else:
        reasons.append(f"mode {mode} as asked")
    levers = MODE_LEVERS[mode]
    overrides = {"step_size": step_size, "mirror_axes": None if mirror_axes is None else tuple(sorted(set(
        int(a) for a in mirror_axes))), "crop_to_body": crop_to_body, "skip_empty_windows": skip_empty_windows,
        "restrict_to_body": restrict_to_body}
    changed = {name: value for name, value in overrides.items() if value is not None}
    if changed.get("step_size") is not None and not 0 < changed["step_size"] <= 1:
        raise ValueError(f"step_size must be in (0, 1], got {changed['step_size']}")
    if any(axis not in ALL_AXES for axis in changed.get("mirror_axes", ())):
        raise ValueError(f"mirror_axes must be among {ALL_AXES}, got {list(changed['mirror_axes'])}")
    if changed:
        reasons.append("set explicitly: " + ", ".join(f"{name}={value}" for name, value in changed.items()))
        levers = Levers(**{**levers.__dict__, **changed})
    return ResolvedLevers(mode, levers, reasons)


def body_threshold(normalization: Sequence[object]) -> float | None:
    """The body threshold in network-input units, or None where the body cannot be found by intensity.

    Only the first channel is used, and only with ``ct`` normalization: its units are known
    Hounsfield units mapped by ``(clip(x) - mean) / std``.

    Args:
        normalization: the configuration's per-channel :class:`NormalizationPlan` list.

    Returns:
        A threshold on channel 0 of the preprocessed data, or None.
    """
    if not normalization:
        return None
    plan = normalization[0]
    if getattr(plan, "scheme", None) != "ct" or None in (plan.clip_low, plan.clip_high, plan.mean, plan.std):
        return None
    hounsfield = min(max(BODY_THRESHOLD_HU, float(plan.clip_low)), float(plan.clip_high))
    return (hounsfield - float(plan.mean)) / max(float(plan.std), 1e-8)


def spans_body_section(shape_yx: Sequence[int], spacing_yx: Sequence[float]) -> bool:
    """Whether an image of ``shape_yx`` voxels at ``spacing_yx`` mm spans a whole body section
    (at least :data:`MIN_BODY_SECTION_MM` along both in-plane axes)."""
    return min(float(n) * float(s) for n, s in zip(shape_yx, spacing_yx)) >= MIN_BODY_SECTION_MM


def is_whole_body_ct(configuration: object) -> bool:
    """A 2D or 3D configuration with ``ct`` normalization trained on whole body sections (median
    in-plane extent after resampling at least :data:`MIN_BODY_SECTION_MM`).

    Args:
        configuration: a :class:`~autolung.planning.plans.ConfigurationPlan`.

    Returns:
        True where the CPU's ``fast`` default was measured.
    """
    median = list(getattr(configuration, "median_shape_after_resampling", None) or [])
    spacing = list(configuration.spacing)
    return (configuration.dim in (2, 3) and body_threshold(configuration.normalization) is not None
            and len(median) == 3 and spans_body_section(median[1:], spacing[1:]))


def body_mask(channel: np.ndarray | torch.Tensor, threshold: float,
              dtype: torch.dtype | None = None) -> np.ndarray:
    """Voxels of the body: above ``threshold``, with each axial slice's holes filled.

    Args:
        channel: ``(Z, Y, X)`` preprocessed intensities (array or CPU tensor).
        threshold: from :func:`body_threshold`.
        dtype: compare the intensities rounded to this dtype (the windows' dtype), slice by slice;
            None compares them as given.

    Returns:
        bool ``(Z, Y, X)``.
    """
    from scipy.ndimage import binary_fill_holes

    mask = np.empty(tuple(channel.shape), dtype=bool)
    for index in range(mask.shape[0]):
        plane = channel[index]
        if dtype is not None:
            plane = torch.as_tensor(plane).to(dtype)
        mask[index] = np.asarray(plane > threshold)
        if mask[index].any():
            mask[index] = binary_fill_holes(mask[index])
    return mask


def open_field_slices(mask: np.ndarray) -> np.ndarray:
    """Axial slices whose body touches the image border (possibly cut by the field of view).

    Args:
        mask: bool ``(Z, Y, X)`` body mask.

    Returns:
        bool ``(Z,)``.
    """
    return mask[:, 0].any(axis=1) | mask[:, -1].any(axis=1) | mask[:, :, 0].any(axis=1) | mask[:, :, -1].any(axis=1)


def body_box(mask: np.ndarray, patch: Sequence[int], margin: int = BODY_MARGIN) -> tuple[slice, ...] | None:
    """Bounding box of ``mask`` plus ``margin``, grown to at least ``patch`` where the volume allows.

    Args:
        mask: bool ``(Z, Y, X)`` body mask.
        patch: window shape ``(pz, py, px)``.
        margin: voxels added on each side.

    Returns:
        Slices into the volume, or None when the mask is empty.
    """
    if not mask.any():
        return None
    box = []
    for axis, (size, length) in enumerate(zip(mask.shape, patch)):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        begin, end = max(0, int(present[0]) - margin), min(size, int(present[-1]) + 1 + margin)
        wanted = min(length, size)
        if end - begin < wanted:
            begin = min(max(0, begin - (wanted - (end - begin)) // 2), size - wanted)
            end = begin + wanted
        box.append(slice(begin, end))
    return tuple(box)
