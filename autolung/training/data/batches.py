"""Deterministic batch construction: batch number ``n`` of a stream is a pure function of
(seed, stream, rank, n). Workers can therefore build batches in any order and a resumed run
continues with exactly the batches an uninterrupted run would have seen."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autolung.labels import RegionMapping
from autolung.output_kind import OutputKind, as_output_kind
from autolung.training.augmentation.base import RandomTransform, Sample
from autolung.training.augmentation.spatial import centre_crop
from autolung.training.data.cases import CaseStore
from autolung.training.data.sampler import sample_patch

STREAM_TRAIN = 0
STREAM_VAL = 1


@dataclass
class Batch:
    """Arrays ready for torch.

    Attributes:
        index: the batch number in its stream.
        data: float32 (B, C, *patch).
        target: uint8 targets (see :meth:`~autolung.output_kind.OutputKind.targets`).
        case_ids: the case of each sample.
    """

    index: int
    data: np.ndarray
    target: np.ndarray
    case_ids: list[str]


class BatchBuilder:
    """Builds batch ``n`` of one stream (training with augmentation, or validation without).

    Args:
        store: preprocessed cases.
        case_ids: cases to draw from (with replacement).
        patch_size: final patch size (2 or 3 values).
        sample_size: size read before augmentation (equal to ``patch_size`` without augmentation).
        forced: per local sample, whether it is forced to contain foreground.
        regions: region mapping for the targets.
        output_kind: the network's output kind (or its loss name), decides the target format.
        augmentation: transform from ``sample_size`` to ``patch_size``; None = centre crop only.
        seed: run seed.
        stream: :data:`STREAM_TRAIN` or :data:`STREAM_VAL`.
        rank: distributed rank (different ranks draw different batches).
    """

    def __init__(self, store: CaseStore, case_ids: Sequence[str], patch_size: Sequence[int],
                 sample_size: Sequence[int], forced: Sequence[bool], regions: RegionMapping,
                 output_kind: OutputKind | str,
                 augmentation: RandomTransform | None, seed: int, stream: int, rank: int = 0) -> None:
        if not case_ids:
            raise ValueError("a batch stream needs at least one case")
        self.store = store
        self.case_ids = list(case_ids)
        self.patch_size = tuple(patch_size)
        self.sample_size = tuple(sample_size)
        self.forced = list(forced)
        self.regions = regions
        self.output_kind = as_output_kind(output_kind)
        self.augmentation = augmentation
        self.seed = seed
        self.stream = stream
        self.rank = rank

    def rng(self, index: int) -> np.random.Generator:
        """The generator for batch ``index``.

        Returns:
            A fresh seeded generator.
        """
        return np.random.default_rng([self.seed, self.stream, self.rank, index])

    def build(self, index: int) -> Batch:
        """Build batch ``index``.

        Returns:
            The :class:`Batch`.
        """
        rng = self.rng(index)
        samples, chosen = [], []
        for forced in self.forced:
            case_id = self.case_ids[int(rng.integers(len(self.case_ids)))]
            sample = sample_patch(self.store.get(case_id), self.sample_size, forced, rng)
            samples.append(self._finish(sample, rng))
            chosen.append(case_id)
        data = np.stack([self._with_previous_stage(s) for s in samples])
        seg = np.stack([s.seg[:1] for s in samples])
        return Batch(index, data, self.output_kind.targets(seg, self.regions), chosen)

    def _with_previous_stage(self, sample: Sample) -> np.ndarray:
        """The sample's image channels, then (cascade) its previous-stage labels one-hot."""
        if sample.seg.shape[0] == 1:
            return sample.data
        from autolung.preprocessing.previous_stage import with_previous_stage

        return with_previous_stage(sample.data, sample.seg[1], self.store.previous_labels or [])

    def _finish(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if self.augmentation is not None:
            return self.augmentation(sample, rng)
        if sample.spatial_shape != self.patch_size:
            return centre_crop(sample, self.patch_size)
        return sample
