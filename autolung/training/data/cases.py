"""Cases for training, read through :class:`autolung.preprocessing.storage.PreprocessedDataset`
(memory-mapped), cached per process and safe to pickle into spawned workers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autolung.errors import InvalidInputError
from autolung.preprocessing.storage import PreprocessedDataset


@dataclass
class Case:
    """One preprocessed case.

    Attributes:
        case_id: identifier.
        data: float32 (C, Z, Y, X), usually a read-only memory map.
        seg: int8 (1, Z, Y, X).
        properties: the case's JSON properties (``class_locations`` among them).
    """

    case_id: str
    data: np.ndarray
    seg: np.ndarray
    properties: dict[str, Any]


def list_cases(folder: Path) -> list[str]:
    """Completely written, labelled cases of a preprocessed configuration folder.

    Args:
        folder: ``preprocessed/<Dataset>/<config>``.

    Returns:
        Sorted identifiers.

    Raises:
        InvalidInputError: when the folder is missing or holds no labelled case.
    """
    dataset = PreprocessedDataset(folder)
    cases = sorted(c for c in dataset.case_ids if dataset.paths(c).seg.is_file())
    if not cases:
        raise InvalidInputError("no preprocessed labelled cases in this folder; run preprocessing first", path=folder)
    return cases


class CaseStore:
    """Opens cases lazily and keeps their memory maps; pickling drops the maps (reopened on use).

    A cascade stage's store also reads ``<previous_stage>/<case>.npy`` (the previous stage's labels
    on the same grid) and stacks it as a second label channel, so spatial augmentation moves it
    with the labels; the batch builder turns it into one-hot input channels.

    Args:
        folder: preprocessed configuration folder.
        mmap: memory-map arrays instead of reading them into RAM.
        previous_stage: folder of previous-stage label arrays (cascade only).
        previous_labels: the label values one-hot encoded from them.
    """

    def __init__(self, folder: Path, mmap: bool = True, previous_stage: Path | None = None,
                 previous_labels: list[int] | None = None) -> None:
        self.folder = Path(folder)
        self.mmap = mmap
        self.previous_stage = Path(previous_stage) if previous_stage is not None else None
        self.previous_labels = previous_labels
        self._open: dict[str, Case] = {}
        self._dataset: PreprocessedDataset | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "mmap": self.mmap, "previous_stage": self.previous_stage,
                "previous_labels": self.previous_labels, "_open": {}, "_dataset": None}

    def get(self, case_id: str) -> Case:
        """The case ``case_id`` (opened on first use).

        Returns:
            The :class:`Case`.
        """
        case = self._open.get(case_id)
        if case is None:
            case = self._load(case_id)
            self._open[case_id] = case
        return case

    def _load(self, case_id: str) -> Case:
        if self._dataset is None:
            self._dataset = PreprocessedDataset(self.folder)
        data, seg, properties = self._dataset.load(case_id, mmap=self.mmap)
        path = self.folder / f"{case_id}.npy"
        if seg is None:
            raise InvalidInputError("preprocessed case has no labels (<case>_seg.npy)", path=path)
        if data.ndim != 4 or seg.ndim != 4 or data.shape[1:] != seg.shape[1:]:
            raise InvalidInputError(f"expected (C,Z,Y,X) image and (1,Z,Y,X) labels, got {data.shape} and {seg.shape}",
                                    path=path)
        if self.previous_stage is not None:
            previous_path = self.previous_stage / f"{case_id}.npy"
            previous = np.load(previous_path)
            if previous.shape != seg.shape[1:]:
                raise InvalidInputError(f"previous-stage labels {previous.shape} do not match the case "
                                        f"{seg.shape[1:]}", path=previous_path)
            seg = np.concatenate([np.asarray(seg, dtype=np.int8), previous[None].astype(np.int8)])
        return Case(case_id, data, seg, properties)
