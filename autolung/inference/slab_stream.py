"""Window outputs summed one window deep along Z, finished slices written out.

The sliding window (:mod:`autolung.inference.sliding_window`) runs its windows in Z order of their
starts. :class:`ZStream` keeps the weighted sums of only the slices the current windows reach, and
:class:`SlabNormaliser` turns a finished slab of sums into probabilities, so no whole-volume float32
accumulator or weight volume is ever held. Where the finished slabs go is
:mod:`autolung.inference.slab_sinks`'s business.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from autolung.output_kind import OutputKind


class SlabNormaliser:
    """Turns a slab of summed window outputs into probabilities.

    Args:
        repeats: passes per window (networks x mirrorings) in every sum.
        output_kind: the activation applied after averaging logits; None when the sums are
            already probabilities.
        profiles: per-axis weight sums of a separable window weight
            (``window_grid.separable_weight_sums``); None when window-deep weight sums are kept.
        keep_logits: with ``output_kind``, leave the averaged logits unactivated (they are
            resampled first); voxels no window covers get the kind's background logits.
    """

    def __init__(self, repeats: int, output_kind: OutputKind | None, profiles: list[np.ndarray] | None,
                 keep_logits: bool = False):
        if keep_logits and output_kind is None:
            raise ValueError("keep_logits needs the output kind of the averaged logits")
        self.repeats = repeats
        self.output_kind = output_kind
        self.keep_logits = keep_logits
        self.profiles = profiles
        self.plane = None if profiles is None else np.multiply.outer(profiles[1], profiles[2]) * repeats

    def __call__(self, sums: torch.Tensor, weight_sums: torch.Tensor | None, begin: int) -> torch.Tensor:
        """Probabilities of the slab ``sums`` ``(R, n, Y, X)`` starting at Z index ``begin`` (in place)."""
        if weight_sums is None:
            assert self.profiles is not None and self.plane is not None
            for offset in range(sums.shape[1]):
                divisor = self.plane * self.profiles[0][begin + offset]
                sums[:, offset] /= torch.from_numpy(divisor.astype(np.float32)).to(sums.device)
            return sums
        uncovered = weight_sums == 0  # voxels of skipped windows only: probability 0
        sums /= torch.where(uncovered, 1.0, weight_sums * self.repeats)
        if self.keep_logits:
            assert self.output_kind is not None
            background = torch.from_numpy(self.output_kind.background_logits(sums.shape[0])).to(sums.device)
            sums[:, uncovered] = background[:, None]
            return sums
        if self.output_kind is not None:
            sums = self.output_kind.probabilities(sums, channel_axis=0)
            sums[:, uncovered] = 0.0
        return sums


class ZStream:
    """Window outputs summed in a float32 buffer one window deep along Z, finished slices written out.

    Windows arrive in Z order of their starts (``window_grid.window_starts``), so once a window starts at
    ``z``, no later window reaches a slice before ``z``: those slices are normalised and handed to
    ``write``, and the buffer moves on. The stream itself holds one window-deep slab per channel,
    whatever the volume's depth.

    Args:
        shape: ``(R, Z, Y, X)`` of the tiled volume.
        depth: the window's Z length.
        device: where the buffers live (the networks' device).
        weight_map: also sum the window weights (non-separable weights).
        normalise: turns a finished slab into probabilities.
        write: ``write(begin, slab)`` takes finished slices ``begin`` onwards, float32 ``(R, n, Y, X)``
            on the CPU; it may change ``slab`` in place (those rows are discarded afterwards).
    """

    def __init__(self, shape: tuple[int, ...], depth: int, device: torch.device, weight_map: bool,
                 normalise: SlabNormaliser, write: Callable[[int, np.ndarray], None]):
        channels, self.length, height, width = shape
        self.depth, self.normalise, self.write, self.begin = depth, normalise, write, 0
        self.sums = torch.zeros((channels, depth, height, width), dtype=torch.float32, device=device)
        self.weights = torch.zeros((depth, height, width), dtype=torch.float32, device=device) if weight_map else None

    def add(self, window: tuple[slice, ...], probabilities: torch.Tensor, gaussian: torch.Tensor) -> None:
        """Add one window's ``(R, *patch)`` outputs, weighted by ``gaussian``."""
        start = window[0].start
        if start > self.begin:
            self._advance(start)
        local = (slice(start - self.begin, window[0].stop - self.begin), *window[1:])
        self.sums[(slice(None), *local)] += probabilities.to(self.sums.device) * gaussian
        if self.weights is not None:
            self.weights[local] += gaussian

    def _advance(self, start: int) -> None:
        finished = min(start - self.begin, self.depth)
        self._write(finished)
        kept = self.depth - finished
        if kept:
            self.sums[:, :kept] = self.sums[:, finished:].clone()
            if self.weights is not None:
                self.weights[:kept] = self.weights[finished:].clone()
        self.sums[:, kept:] = 0.0
        if self.weights is not None:
            self.weights[kept:] = 0.0
        # Slices between the buffer's end and ``start`` no window reached: never written, they stay 0.
        self.begin = start

    def _write(self, count: int) -> None:
        count = min(count, self.length - self.begin)
        if count <= 0:
            return
        weights = None if self.weights is None else self.weights[:count]
        # In place: these rows are discarded after writing.
        slab = self.normalise(self.sums[:, :count], weights, self.begin)
        self.write(self.begin, slab.cpu().numpy())

    def close(self) -> None:
        """Write the remaining slices."""
        self._write(self.depth)
