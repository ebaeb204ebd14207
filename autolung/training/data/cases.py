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

    Args:
        folder: preprocessed configuration folder.
        mmap: memory-map arrays instead of reading them into RAM.
    """

    def __init__(self, folder: Path, mmap: bool = True) -> None:
        self.folder = Path(folder)
        self.mmap = mmap
        self._open: dict[str, Case] = {}
        self._dataset: PreprocessedDataset | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "mmap": self.mmap, "_open": {}, "_dataset": None}

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
        return Case(case_id, data, seg, properties)
