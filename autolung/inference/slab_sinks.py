"""Where the sliding window's finished slabs go: whole-volume probabilities, or labels straight away.

The Z stream (:mod:`autolung.inference.slab_stream`) hands out slabs of finished float32
probabilities in the coordinates of the tile it ran on (the body crop, padded to at least one
window). :class:`TileWriter` drops the padding, moves the slab to the whole volume's coordinates,
applies the body restriction, and passes it to a sink:

- :class:`ProbabilitySink` keeps the whole volume's probabilities (float32, or float16 for a case
  wanted only for its labels);
- :class:`LabelSink` turns each slab into labels at once, so a case whose labels need no
  resampling never holds its probabilities at all: only the uint8 label map and one window-deep
  slab.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from autolung.labels import RegionMapping

logger = logging.getLogger(__name__)

# Slices converted to labels at once: bounds the temporaries of the argmax or threshold.
LABEL_CHUNK = 16

Region = tuple[slice, slice, slice]


def labels_in_chunks(probabilities: np.ndarray, mapping: RegionMapping, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 labels of ``(R, Z, ...)`` probabilities, :data:`LABEL_CHUNK` slices at a time.

    Args:
        probabilities: ``(R, Z, ...)``.
        mapping: how channels map to labels (:meth:`RegionMapping.probabilities_to_labels`).
        out: uint8 array (or view) of shape ``(Z, ...)`` to paint into; None: a new one.

    Returns:
        ``out``, or the new label map.
    """
    if out is None:
        out = np.zeros(probabilities.shape[1:], dtype=np.uint8)
    for begin in range(0, out.shape[0], LABEL_CHUNK):
        out[begin:begin + LABEL_CHUNK] = mapping.probabilities_to_labels(probabilities[:, begin:begin + LABEL_CHUNK])
    return out


class SlabSink(Protocol):
    """Receives finished slabs in whole-volume coordinates and builds the result."""

    def write(self, region: Region, slab: np.ndarray) -> None:
        """Take ``slab`` ``(R, *region's shape)``, float32 probabilities of ``region``."""

    def result(self) -> np.ndarray:
        """The finished volume."""


def zero_probabilities(channels: int) -> np.ndarray:
    """What a voxel no window predicted holds: probability 0 in every channel."""
    return np.zeros(channels, dtype=np.float32)


class ProbabilitySink:
    """Probabilities ``(R, Z, Y, X)`` of ``dtype`` (or averaged logits), ``empty`` where no slab was written.

    Args:
        spatial: the volume's shape ``(Z, Y, X)``.
        dtype: float32, or float16 (rounding below 2.5e-4).
        empty: per-channel values of an unpredicted voxel, given the channel count
            (``OutputKind.background_logits`` when logits are kept).
    """

    def __init__(self, spatial: tuple[int, ...], dtype: np.dtype,
                 empty: Callable[[int], np.ndarray] = zero_probabilities):
        self.spatial, self.dtype, self.empty = tuple(spatial), np.dtype(dtype), empty
        self.out: np.ndarray | None = None

    def write(self, region: Region, slab: np.ndarray) -> None:
        if self.out is None:  # the channel count is known from the first slab
            self.out = np.empty((slab.shape[0], *self.spatial), dtype=self.dtype)
            self.out[...] = self.empty(slab.shape[0]).reshape(-1, *([1] * len(self.spatial)))
        self.out[(slice(None), *region)] = slab

    def result(self) -> np.ndarray:
        if self.out is None:
            raise RuntimeError("no slab was written: the sliding window ran no window")
        return self.out


class LabelSink:
    """The uint8 label map ``(Z, Y, X)``, painted slab by slab (background where no slab was written).

    Uses :meth:`RegionMapping.probabilities_to_labels`, the rule of every other label map, on the
    float32 probabilities as they leave the stream.

    Args:
        spatial: the volume's shape ``(Z, Y, X)``.
        mapping: how channels map to labels.
    """

    def __init__(self, spatial: tuple[int, ...], mapping: RegionMapping):
        self.labels = np.zeros(tuple(spatial), dtype=np.uint8)
        self.mapping = mapping

    def write(self, region: Region, slab: np.ndarray) -> None:
        labels_in_chunks(slab, self.mapping, out=self.labels[region])

    def result(self) -> np.ndarray:
        return self.labels


class BodyRestriction:
    """Probability 0 outside the body, except on slices the field of view may cut.

    Args:
        body: bool ``(Z, Y, X)`` body mask of the whole volume.
        empty: per-channel values there, given the channel count (background logits when logits are kept).
    """

    def __init__(self, body: np.ndarray, empty: Callable[[int], np.ndarray] = zero_probabilities):
        from autolung.inference.levers import open_field_slices

        self.body, self.empty = body, empty
        self.open_field = open_field_slices(body)
        if self.open_field.any():
            logger.warning("%d slices' body touches the image border (field of view cut?): not restricted to the "
                           "body there", int(self.open_field.sum()))

    def apply(self, region: Region, slab: np.ndarray) -> None:
        """Set ``slab`` (probabilities of ``region``) to the empty values outside the body, in place."""
        values = self.empty(slab.shape[0])[:, None]
        for offset, z in enumerate(range(region[0].start, region[0].stop)):
            if not self.open_field[z]:
                slab[:, offset][:, ~self.body[z, region[1], region[2]]] = values


@dataclass(frozen=True)
class Destination:
    """Where a tile's slabs go: the sink, the tile's offset in the volume and the body restriction."""

    sink: SlabSink
    offset: tuple[int, int, int] = (0, 0, 0)
    restriction: BodyRestriction | None = None

    def writer(self, crop: tuple[slice, ...]) -> TileWriter:
        """The writer for a tile padded around ``crop`` (the unpadded part)."""
        return TileWriter(self, crop)


class TileWriter:
    """Writes a padded tile's finished slabs into its destination: padding dropped, offset applied.

    Args:
        destination: sink, offset and restriction.
        crop: the unpadded part of the tile, in tile coordinates.
    """

    def __init__(self, destination: Destination, crop: tuple[slice, ...]):
        self.destination, self.crop = destination, crop

    def __call__(self, begin: int, slab: np.ndarray) -> None:
        """Take the tile's finished slices ``begin`` onwards, ``slab`` ``(R, n, Y', X')``."""
        crop, offset = self.crop, self.destination.offset
        first, stop = max(begin, crop[0].start), min(begin + slab.shape[1], crop[0].stop)
        if stop <= first:
            return
        part = slab[:, first - begin:stop - begin, crop[1], crop[2]]
        shift = offset[0] - crop[0].start
        region = (slice(first + shift, stop + shift),
                  *(slice(o, o + c.stop - c.start) for o, c in zip(offset[1:], crop[1:])))
        if self.destination.restriction is not None:
            self.destination.restriction.apply(region, part)
        self.destination.sink.write(region, part)
