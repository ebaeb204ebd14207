"""How label maps become network output channels, and back.

Each output channel is a *region*: a set of label values. By default every foreground label is
its own region (``[[1], [2]]``). A dataset may declare nested regions instead (nnU-Net v2 style
``"labels": {"lung": [1, 2], "tumour": 2}`` with ``regions_class_order``), e.g. lung-or-tumour
then tumour.

Back to a label map:
- disjoint regions (every label in exactly one region): a voxel gets the label of the channel with
  the highest probability, when that probability is at least 0.5, else background;
- nested regions: channels are painted in order, each voxel whose probability is at least 0.5
  takes that channel's ``paint_label``; later (inner) regions overwrite earlier (outer) ones;
- a background channel of its own (first region ``(0,)``, softmax models such as nnU-Net's): the
  most probable channel wins, with no threshold (the channels sum to one).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THRESHOLD = 0.5


@dataclass(frozen=True)
class RegionMapping:
    """Output channels as sets of label values.

    Attributes:
        regions: one tuple of label values per output channel.
        paint_labels: the label each channel paints when converting back (nested case).
    """

    regions: tuple[tuple[int, ...], ...]
    paint_labels: tuple[int, ...]

    @classmethod
    def one_per_label(cls, foreground_labels: list[int]) -> RegionMapping:
        labels = sorted(int(v) for v in foreground_labels)
        return cls(tuple((v,) for v in labels), tuple(labels))

    @property
    def num_channels(self) -> int:
        return len(self.regions)

    @property
    def has_background_channel(self) -> bool:
        """True when channel 0 is the background (softmax output): labels are a plain argmax."""
        return bool(self.regions) and self.regions[0] == (0,)

    @property
    def is_disjoint(self) -> bool:
        seen: list[int] = [v for region in self.regions for v in region]
        return len(seen) == len(set(seen)) and all(len(r) == 1 for r in self.regions)

    def labels_to_targets(self, seg: np.ndarray) -> np.ndarray:
        """Binary targets, one channel per region, shape ``(R, *seg.shape)`` as uint8."""
        targets = np.zeros((self.num_channels, *seg.shape), dtype=np.uint8)
        for channel, region in enumerate(self.regions):
            targets[channel] = np.isin(seg, region)
        return targets

    def probabilities_to_labels(self, probabilities: np.ndarray) -> np.ndarray:
        """Label map from per-channel probabilities of shape ``(R, ...)``; dtype uint8."""
        if probabilities.shape[0] != self.num_channels:
            raise ValueError(f"expected {self.num_channels} channels, got {probabilities.shape[0]}")
        seg = np.zeros(probabilities.shape[1:], dtype=np.uint8)
        if self.has_background_channel:
            lookup = np.asarray(self.paint_labels, dtype=np.uint8)
            return lookup[np.argmax(probabilities, axis=0)]
        if self.is_disjoint:
            best = np.argmax(probabilities, axis=0)
            confident = np.max(probabilities, axis=0) >= THRESHOLD
            lookup = np.asarray(self.paint_labels, dtype=np.uint8)
            seg[confident] = lookup[best[confident]]
            return seg
        for channel, label in enumerate(self.paint_labels):
            seg[probabilities[channel] >= THRESHOLD] = label
        return seg

    def to_json(self) -> dict:
        return {"regions": [list(r) for r in self.regions], "paint_labels": list(self.paint_labels)}

    @classmethod
    def from_json(cls, payload: dict) -> RegionMapping:
        return cls(tuple(tuple(int(v) for v in r) for r in payload["regions"]),
                   tuple(int(v) for v in payload["paint_labels"]))
