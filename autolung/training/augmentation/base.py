"""The transform protocol, the probability wrapper and the composition."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Sample:
    """One training patch.

    Attributes:
        data: float32 image, (C, *spatial).
        seg: integer labels, (1, *spatial).
    """

    data: np.ndarray
    seg: np.ndarray

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])


class RandomTransform:
    """Base class: draw parameters with :meth:`sample`, apply them with :meth:`apply`."""

    def sample(self, rng: np.random.Generator, sample: Sample) -> Any:
        """Draw this transform's parameters for ``sample``.

        Args:
            rng: the only source of randomness.
            sample: the patch (for shape and channel count).

        Returns:
            Parameters understood by :meth:`apply`.
        """
        raise NotImplementedError

    def apply(self, sample: Sample, params: Any) -> Sample:
        """Apply ``params`` deterministically.

        Returns:
            The transformed sample.
        """
        raise NotImplementedError

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return self.apply(sample, self.sample(rng, sample))


class Maybe(RandomTransform):
    """Run ``transform`` with probability ``p`` (per sample).

    Args:
        transform: the wrapped transform.
        p: probability of applying it.
    """

    def __init__(self, transform: RandomTransform, p: float) -> None:
        self.transform = transform
        self.p = p

    def sample(self, rng: np.random.Generator, sample: Sample) -> Any:
        if rng.uniform() >= self.p:
            return None
        return self.transform.sample(rng, sample)

    def apply(self, sample: Sample, params: Any) -> Sample:
        return sample if params is None else self.transform.apply(sample, params)

    def __repr__(self) -> str:
        return f"Maybe({self.transform!r}, p={self.p})"


class Compose(RandomTransform):
    """Apply transforms in order; parameters of later ones are drawn after earlier ones ran.

    Args:
        transforms: the transforms.
    """

    def __init__(self, transforms: Sequence[RandomTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


def apply_per_channel(data: np.ndarray, per_channel: Sequence[Any], function: Any) -> np.ndarray:
    """Apply ``function(channel, params)`` to channels whose params are not None.

    Args:
        data: (C, *spatial).
        per_channel: one parameter (or None to skip) per channel.
        function: the deterministic twin for one channel.

    Returns:
        A new float32 array.
    """
    out = data.copy()
    for channel, params in enumerate(per_channel):
        if params is not None:
            out[channel] = function(data[channel], params)
    return out
