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

An *ignore label* (nnU-Net v2's ``"ignore"`` entry, the highest label value) marks voxels nobody
annotated. It is no region, so it is never predicted; :meth:`RegionMapping.annotated` gives the
mask of the voxels that count in the loss, the pseudo-Dice, evaluation and postprocessing choice.
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
        ignore_label: the label value of unannotated voxels, or None when every voxel is annotated.
    """

    regions: tuple[tuple[int, ...], ...]
    paint_labels: tuple[int, ...]
    ignore_label: int | None = None

    def annotated(self, seg: np.ndarray) -> np.ndarray | None:
        """Boolean mask of annotated voxels (not the ignore label); None without an ignore label."""
        if self.ignore_label is None:
            return None
        return seg != self.ignore_label

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
        payload = {"regions": [list(r) for r in self.regions], "paint_labels": list(self.paint_labels)}
        if self.ignore_label is not None:
            # Only written when present, so plans of datasets without one keep their digest.
            payload["ignore_label"] = int(self.ignore_label)
        return payload

    @classmethod
    def from_json(cls, payload: dict) -> RegionMapping:
        ignore = payload.get("ignore_label")
        return cls(tuple(tuple(int(v) for v in r) for r in payload["regions"]),
                   tuple(int(v) for v in payload["paint_labels"]),
                   None if ignore is None else int(ignore))


def mask_ignored(reference: np.ndarray, prediction: np.ndarray,
                 ignore_label: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Reference and prediction with every voxel the reference marks ``ignore_label`` set to background.

    Overlap counts on the result are nnU-Net's masked counts: unannotated voxels are neither
    true nor false positives.

    Args:
        reference: reference label map.
        prediction: predicted label map, same shape.
        ignore_label: the ignore label value, or None (then both are returned unchanged).

    Returns:
        ``(reference, prediction)``, copies where anything was masked.
    """
    if ignore_label is None:
        return reference, prediction
    unannotated = reference == ignore_label
    if not unannotated.any():
        return reference, prediction
    reference = reference.copy()
    prediction = prediction.copy()
    reference[unannotated] = 0
    prediction[unannotated] = 0
    return reference, prediction
