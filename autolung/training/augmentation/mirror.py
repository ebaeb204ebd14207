"""Mirroring along spatial axes."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autolung.training.augmentation.base import RandomTransform, Sample


def mirror(sample: Sample, axes: Sequence[int]) -> Sample:
    """Deterministic twin: flip image and labels along the given spatial axes.

    Args:
        sample: the patch.
        axes: spatial axes (0-based, not counting the channel axis).

    Returns:
        The flipped sample (contiguous copies).
    """
    if not axes:
        return sample
    array_axes = tuple(a + 1 for a in axes)
    return Sample(np.ascontiguousarray(np.flip(sample.data, array_axes)),
                  np.ascontiguousarray(np.flip(sample.seg, array_axes)))


class RandomMirror(RandomTransform):
    """Flip each of ``axes`` independently with probability ``p_per_axis``.

    Args:
        axes: spatial axes that may be flipped.
        p_per_axis: probability per axis.
    """

    def __init__(self, axes: Sequence[int], p_per_axis: float = 0.5) -> None:
        self.axes = tuple(axes)
        self.p_per_axis = p_per_axis

    def sample(self, rng: np.random.Generator, sample: Sample) -> tuple[int, ...]:
        return tuple(a for a in self.axes if rng.uniform() < self.p_per_axis)

    def apply(self, sample: Sample, params: tuple[int, ...]) -> Sample:
        return mirror(sample, params)

    def __repr__(self) -> str:
        return f"RandomMirror(axes={self.axes})"
