"""Planning rules that depend only on the fingerprint: target spacing, shapes, normalization.

Each function returns its result and a :class:`Decision` that states the numbers and the rule,
for ``autolung plan --explain``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autolung.fingerprint.schema import Fingerprint
from autolung.planning.plans import Decision, NormalizationPlan

ANISOTROPY_THRESHOLD = 3.0
COARSE_AXIS_PERCENTILE = 10
NONZERO_CROP_THRESHOLD = 0.75

CT_NAMES = {"ct", "cta", "cect", "ncct", "hu"}
EIGHT_BIT_NAMES = {"rgb", "r", "g", "b", "red", "green", "blue", "8bit", "8-bit", "png", "jpg", "jpeg", "photo",
                   "grey", "gray", "grayscale", "greyscale"}
ZSCORE_NAMES = {"mr", "mri", "t1", "t1w", "t1c", "t1ce", "t1gd", "t2", "t2w", "flair", "adc", "dwi", "pd", "pet",
                "us", "ultrasound", "xray", "x-ray", "cxr", "dr", "cr", "nonct", "noct", "fluoro", "spect"}
EIGHT_BIT_FORMATS = {"png", "jpg", "jpeg", "bmp", "tif", "tiff"}


def _spacings(fingerprint: Fingerprint) -> np.ndarray:
    return np.asarray(fingerprint.spacings, dtype=np.float64)


def _fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def target_spacing(fingerprint: Fingerprint) -> tuple[list[float], Decision]:
    """Median spacing, with the thick-slice rule.

    When the coarsest axis is more than 3x coarser than the others *and* has fewer than a third of
    their voxels, the median would make interpolation along it too coarse for the cases with
    thinner slices; the 10th percentile of that axis's spacings is used instead (never finer than
    the other axes).

    Args:
        fingerprint: the dataset fingerprint.

    Returns:
        ``(spacing (z, y, x), decision)``.
    """
    spacings = _spacings(fingerprint)
    target = np.median(spacings, axis=0)
    sizes = np.median(np.asarray(fingerprint.shapes_after_crop, dtype=np.float64), axis=0)
    coarse = int(np.argmax(target))
    others = [a for a in range(len(target)) if a != coarse]
    thick = target[coarse] > ANISOTROPY_THRESHOLD * max(target[a] for a in others)
    few_slices = sizes[coarse] * ANISOTROPY_THRESHOLD < min(sizes[a] for a in others)
    if fingerprint.is_2d:
        return [float(v) for v in target], Decision(
            "target spacing", [float(v) for v in target],
            f"median spacing of {len(spacings)} 2D images (the slice spacing is a placeholder)")
    if not (thick and few_slices):
        rule = f"median spacing of {len(spacings)} cases"
        if thick:
            rule += (f"; axis {coarse} is >{ANISOTROPY_THRESHOLD:g}x coarser but has enough voxels "
                     f"(median {sizes[coarse]:g} vs {min(sizes[a] for a in others):g}), so the median is kept")
        return [float(v) for v in target], Decision("target spacing", [float(v) for v in target], rule)
    low = float(np.percentile(spacings[:, coarse], COARSE_AXIS_PERCENTILE))
    chosen = max(low, max(target[a] for a in others) + 1e-5) if low < max(target[a] for a in others) else low
    median_coarse = float(target[coarse])
    target[coarse] = chosen
    rule = (f"thick-slice data: axis {coarse} median spacing {median_coarse:g} > {ANISOTROPY_THRESHOLD:g} x "
            f"{max(target[a] for a in others):g} and median {sizes[coarse]:g} voxels x {ANISOTROPY_THRESHOLD:g} < "
            f"{min(sizes[a] for a in others):g}; use the {COARSE_AXIS_PERCENTILE}th percentile of its spacings "
            f"({low:g}) instead of the median")
    return [float(v) for v in target], Decision("target spacing", [float(v) for v in target], rule)


def resampled_shapes(fingerprint: Fingerprint, spacing: Sequence[float]) -> np.ndarray:
    """Cropped shape of every case after resampling to ``spacing``, shape ``(cases, 3)``."""
    rows = []
    for case in fingerprint.cases:
        rows.append([max(1, int(round(s * sp / t))) for s, sp, t in
                     zip(case.shape_after_crop, case.spacing, spacing)])
    return np.asarray(rows, dtype=np.float64)


def median_shape(fingerprint: Fingerprint, spacing: Sequence[float]) -> tuple[list[int], Decision]:
    """Median cropped shape after resampling to ``spacing``."""
    shape = [int(round(v)) for v in np.median(resampled_shapes(fingerprint, spacing), axis=0)]
    return shape, Decision("median shape after resampling", shape,
                           f"median over cases of the nonzero-cropped shape resampled to {_fmt(spacing)} mm")


def anisotropic_axis(spacing: Sequence[float]) -> int | None:
    """The axis that is more than 3x coarser than the finest, if any (resampled separately)."""
    values = list(spacing)
    coarse = int(np.argmax(values))
    return coarse if values[coarse] > ANISOTROPY_THRESHOLD * min(values) else None


def _is_eight_bit(fingerprint: Fingerprint, channel: int, name: str) -> str | None:
    """Why channel ``channel`` counts as an 8-bit image, or None."""
    if not fingerprint.is_2d:
        return None
    if name.lower() in EIGHT_BIT_NAMES:
        return f"channel name {name!r} marks an 8-bit image"
    formats = set(fingerprint.file_formats or ()) | {str(fingerprint.file_ending or "").lstrip(".")}
    value_range = fingerprint.channel_value_range(channel)
    if formats & EIGHT_BIT_FORMATS and value_range.is_eight_bit:
        return f"8-bit {'/'.join(sorted(formats & EIGHT_BIT_FORMATS))} file with values in [0, 255]"
    if value_range.is_eight_bit:
        return f"2D integer image with values in [{value_range.min:g}, {value_range.max:g}]"
    return None


def _ct_plan(fingerprint: Fingerprint, channel: int, name: str,
             why: str = "CT: Hounsfield units are comparable across scans") -> NormalizationPlan | None:
    stats = fingerprint.intensity(channel)
    if stats is None or stats.std <= 0:
        return None
    return NormalizationPlan(
        channel_name=name, scheme="ct", clip_low=stats.percentile_00_5, clip_high=stats.percentile_99_5,
        mean=stats.mean, std=stats.std,
        reason=(f"{why}, so clip to the dataset foreground "
                f"0.5/99.5 percentiles [{stats.percentile_00_5:g}, {stats.percentile_99_5:g}] and "
                f"z-score with the foreground mean {stats.mean:.4g} and std {stats.std:.4g}"))


def _zscore_plan(fingerprint: Fingerprint, name: str, why: str) -> NormalizationPlan:
    size = fingerprint.median_relative_size_after_crop
    relative = float(size if size is not None else 1.0)
    if relative < NONZERO_CROP_THRESHOLD:
        return NormalizationPlan(channel_name=name, scheme="zscore_nonzero",
                                 reason=(f"{why}; cropping to the nonzero region shrank the median image to "
                                         f"{relative:.2f} (< {NONZERO_CROP_THRESHOLD}) of its size, so normalize "
                                         "inside the nonzero mask and keep the outside at 0"))
    return NormalizationPlan(channel_name=name, scheme="zscore",
                             reason=f"{why}; intensities are not comparable across images, so z-score each image")


def normalization(fingerprint: Fingerprint) -> list[NormalizationPlan]:
    """One normalization per channel, chosen from the channel name and the intensity fingerprint.

    CT gets "ct" (dataset-wide clip and z-score), 8-bit 2D CT images too, as in nnU-Net (MSD tumour
    patches, 10 minutes: +0.023 test Dice over "rescale_0_1", docs/benchmarks.md); other 8-bit 2D
    images get "rescale_0_1"; known other modalities and unknown names get per-image "zscore"
    ("zscore_nonzero" when cropping to the nonzero region shrank the median image below 3/4 of its
    size).

    Args:
        fingerprint: the dataset fingerprint.

    Returns:
        One :class:`NormalizationPlan` per channel, each with its ``reason``.
    """
    plans = []
    for channel, name in enumerate(fingerprint.channel_names):
        key = name.strip().lower()
        eight_bit = _is_eight_bit(fingerprint, channel, name)
        # Windowed CT in an 8-bit file is still CT: z-scored, not divided by 255, because the
        # augmentation's noise, brightness and padding are sized for z-scored intensities.
        ct = None if key not in CT_NAMES else _ct_plan(
            fingerprint, channel, name, f"{eight_bit}, named CT: windowed CT, comparable across images" if eight_bit
            else "CT: Hounsfield units are comparable across scans")
        if ct is not None:
            plans.append(ct)
            continue
        if eight_bit:
            plans.append(NormalizationPlan(channel_name=name, scheme="rescale_0_1",
                                           reason=f"{eight_bit}: already windowed, so divide by 255"))
            continue
        if key in CT_NAMES:
            plans.append(_zscore_plan(fingerprint, name, f"CT channel {name!r} without foreground statistics"))
            continue
        why = (f"channel {name!r} is a known non-CT modality" if key in ZSCORE_NAMES
               else f"unknown channel name {name!r}, treated as a non-CT modality")
        plans.append(_zscore_plan(fingerprint, name, why))
    return plans
