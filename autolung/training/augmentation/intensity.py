"""Intensity transforms (nnU-Net's default ranges), each a sampler plus a deterministic twin.

Twins take one channel (spatial array) and explicit parameters; the samplers draw one parameter
set per channel (None where a channel is left alone).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.transform import resize

from autolung.training.augmentation.base import RandomTransform, Sample, apply_per_channel


def _asymmetric_factor(rng: np.random.Generator, low: float, high: float) -> float:
    # Half the time below 1, half above: an even chance to darken or brighten whatever the range.
    if rng.uniform() < 0.5 and low < 1:
        return float(rng.uniform(low, 1))
    return float(rng.uniform(max(low, 1), high))


# --- deterministic twins -------------------------------------------------------------------------

def add_gaussian_noise(channel: np.ndarray, params: tuple[float, int]) -> np.ndarray:
    """Add zero-mean noise of standard deviation ``sigma`` drawn from ``noise_seed``."""
    sigma, noise_seed = params
    noise = np.random.default_rng(noise_seed).normal(0.0, sigma, size=channel.shape)
    return (channel + noise).astype(np.float32)


def gaussian_blur(channel: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing with ``sigma`` voxels along every axis."""
    return gaussian_filter(channel, sigma, mode="nearest").astype(np.float32)


def multiply_brightness(channel: np.ndarray, factor: float) -> np.ndarray:
    """Multiply intensities by ``factor``."""
    return (channel * factor).astype(np.float32)


def adjust_contrast(channel: np.ndarray, factor: float) -> np.ndarray:
    """Scale deviations from the mean by ``factor``, clipped to the original range."""
    mean = channel.mean()
    out = (channel - mean) * factor + mean
    return np.clip(out, channel.min(), channel.max()).astype(np.float32)


def simulate_low_resolution(channel: np.ndarray, params: tuple[float, tuple[int, ...]]) -> np.ndarray:
    """Downsample by ``zoom`` (nearest) and upsample back (cubic), except along ``ignore_axes``."""
    zoom, ignore_axes = params
    low = [length if axis in ignore_axes else max(1, int(round(length * zoom)))
           for axis, length in enumerate(channel.shape)]
    small = resize(channel, low, order=0, mode="edge", anti_aliasing=False, preserve_range=True)
    return resize(small, channel.shape, order=3, mode="edge", anti_aliasing=False,
                  preserve_range=True).astype(np.float32)


def adjust_gamma(channel: np.ndarray, params: tuple[float, bool]) -> np.ndarray:
    """Gamma on the [min, max]-rescaled channel (of the negated channel when ``invert``),
    then restore the original mean and standard deviation."""
    gamma, invert = params
    x = -channel if invert else channel
    mean, std = x.mean(), x.std()
    low, span = x.min(), x.max() - x.min()
    out = np.power((x - low) / max(span, 1e-7), gamma) * span + low
    out_std = out.std()
    out = (out - out.mean()) / max(out_std, 1e-7) * std + mean if out_std > 0 else out
    return (-out if invert else out).astype(np.float32)


# --- samplers -----------------------------------------------------------------------------------

class PerChannelTransform(RandomTransform):
    """A transform whose twin works on one channel at a time; each channel runs with ``p_per_channel``.

    Args:
        p_per_channel: probability that a channel is transformed.
    """

    twin: Any = None

    def __init__(self, p_per_channel: float = 1.0) -> None:
        self.p_per_channel = p_per_channel

    def sample_channel(self, rng: np.random.Generator, sample: Sample) -> Any:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, sample: Sample) -> list[Any]:
        params = []
        for _ in range(sample.data.shape[0]):
            chosen = rng.uniform() < self.p_per_channel
            params.append(self.sample_channel(rng, sample) if chosen else None)
        return params

    def apply(self, sample: Sample, params: Sequence[Any]) -> Sample:
        return Sample(apply_per_channel(sample.data, params, type(self).twin), sample.seg)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__})"


class GaussianNoise(PerChannelTransform):
    """Additive noise, standard deviation uniform in ``sigma_range``."""

    twin = staticmethod(add_gaussian_noise)

    def __init__(self, sigma_range: tuple[float, float] = (0.0, 0.1)) -> None:
        super().__init__(1.0)
        self.sigma_range = sigma_range

    def sample_channel(self, rng: np.random.Generator, sample: Sample) -> tuple[float, int]:
        return float(rng.uniform(*self.sigma_range)), int(rng.integers(2 ** 31))


class GaussianBlur(PerChannelTransform):
    """Blur with sigma uniform in ``sigma_range``, each channel with probability 0.5."""

    twin = staticmethod(gaussian_blur)

    def __init__(self, sigma_range: tuple[float, float] = (0.5, 1.0), p_per_channel: float = 0.5) -> None:
        super().__init__(p_per_channel)
        self.sigma_range = sigma_range

    def sample_channel(self, rng: np.random.Generator, sample: Sample) -> float:
        return float(rng.uniform(*self.sigma_range))


class Brightness(PerChannelTransform):
    """Multiplicative brightness, factor uniform in ``factor_range``."""

    twin = staticmethod(multiply_brightness)

    def __init__(self, factor_range: tuple[float, float] = (0.75, 1.25)) -> None:
        super().__init__(1.0)
        self.factor_range = factor_range

    def sample_channel(self, rng: np.random.Generator, sample: Sample) -> float:
        return float(rng.uniform(*self.factor_range))


class Contrast(PerChannelTransform):
    """Contrast scaling around the mean, range preserved."""

    twin = staticmethod(adjust_contrast)

    def __init__(self, factor_range: tuple[float, float] = (0.75, 1.25)) -> None:
        super().__init__(1.0)
        self.factor_range = factor_range

    def sample_channel(self, rng: np.random.Generator, sample: Sample) -> float:
        return _asymmetric_factor(rng, *self.factor_range)


class LowResolution(PerChannelTransform):
    """Low-resolution simulation with zoom uniform in ``zoom_range``; axes in ``ignore_axes`` kept."""

    twin = staticmethod(simulate_low_resolution)

    def __init__(self, zoom_range: tuple[float, float] = (0.5, 1.0), p_per_channel: float = 0.5,
                 ignore_axes: tuple[int, ...] = ()) -> None:
        super().__init__(p_per_channel)
        self.zoom_range = zoom_range
        self.ignore_axes = tuple(ignore_axes)

    def sample_channel(self, rng: np.random.Generator, sample: Sample) -> tuple[float, tuple[int, ...]]:
        return float(rng.uniform(*self.zoom_range)), self.ignore_axes


class Gamma(PerChannelTransform):
    """Gamma in ``gamma_range`` (half the draws below 1), optionally on the inverted image."""

    twin = staticmethod(adjust_gamma)

    def __init__(self, gamma_range: tuple[float, float] = (0.7, 1.5), invert: bool = False) -> None:
        super().__init__(1.0)
        self.gamma_range = gamma_range
        self.invert = invert

    def sample_channel(self, rng: np.random.Generator, sample: Sample) -> tuple[float, bool]:
        return _asymmetric_factor(rng, *self.gamma_range), self.invert
