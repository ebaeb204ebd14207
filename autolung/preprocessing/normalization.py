"""Intensity normalization per input channel, as planned (:class:`NormalizationPlan`).

Schemes (see the NormalizationPlan docstring): ``ct`` clips to dataset percentiles and applies
the dataset's foreground mean/std, ``zscore`` uses the image's own statistics,
``zscore_nonzero`` the statistics inside the nonzero mask (zero outside) and ``rescale_0_1``
divides 8-bit images by 255. Everything happens in place on float32 channels.
"""
from __future__ import annotations

import numpy as np

from autolung.errors import InvalidPlansError
from autolung.planning.plans import NormalizationPlan

# Guards a constant image against division by zero without changing any real image.
MIN_STD = 1e-8


def nonzero_mask(data: np.ndarray) -> np.ndarray:
    """Voxels nonzero in any channel of ``(C, Z, Y, X)`` data: the region ``zscore_nonzero`` uses."""
    mask = data[0] != 0
    for channel in data[1:]:
        mask |= channel != 0
    return mask


def normalize_channel(channel: np.ndarray, plan: NormalizationPlan, mask: np.ndarray | None = None) -> None:
    """Normalize one float32 channel in place.

    Args:
        channel: float32 ``(Z, Y, X)``, modified in place.
        plan: the channel's normalization plan.
        mask: nonzero mask for ``zscore_nonzero`` (computed from ``channel`` when None).

    Returns:
        None.
    """
    scheme = plan.scheme
    if scheme == "ct":
        if None in (plan.clip_low, plan.clip_high, plan.mean, plan.std):
            raise InvalidPlansError(f"channel {plan.channel_name!r}: scheme 'ct' needs clip_low, clip_high, mean, std")
        np.clip(channel, plan.clip_low, plan.clip_high, out=channel)
        channel -= np.float32(plan.mean)
        channel /= np.float32(max(plan.std, MIN_STD))
    elif scheme == "zscore":
        mean, std = float(channel.mean(dtype=np.float64)), float(channel.std(dtype=np.float64))
        channel -= np.float32(mean)
        channel /= np.float32(max(std, MIN_STD))
    elif scheme == "zscore_nonzero":
        mask = channel != 0 if mask is None else mask
        values = channel[mask]
        if values.size:
            mean, std = float(values.mean(dtype=np.float64)), float(values.std(dtype=np.float64))
            channel -= np.float32(mean)
            channel /= np.float32(max(std, MIN_STD))
        channel[~mask] = 0
    elif scheme == "rescale_0_1":
        channel /= np.float32(255.0)
    elif scheme == "none":
        pass
    else:
        raise InvalidPlansError(f"channel {plan.channel_name!r}: unknown normalization scheme {scheme!r}")


def normalize(data: np.ndarray, plans: list[NormalizationPlan]) -> np.ndarray:
    """Normalize every channel of float32 ``(C, Z, Y, X)`` data in place.

    Args:
        data: float32 image, modified in place (callers pass their own copy).
        plans: one plan per channel.

    Returns:
        ``data``.
    """
    if len(plans) != data.shape[0]:
        raise InvalidPlansError(f"the plans normalize {len(plans)} channel(s) but the image has {data.shape[0]}")
    mask = nonzero_mask(data) if any(p.scheme == "zscore_nonzero" for p in plans) else None
    for channel, plan in zip(data, plans):
        normalize_channel(channel, plan, mask)
    return data
