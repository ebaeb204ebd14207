"""On-disk layout of preprocessed cases, and a reader for training.

One configuration folder holds, per case, ``<case>.npy`` (float32 ``(C, Z, Y, X)``, memory-mappable),
``<case>_seg.npy`` (int8 ``(1, Z, Y, X)``) and ``<case>.json`` (properties). The properties file is
written last, so its presence (with the current plans digest) marks a complete case.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from autolung.errors import InvalidInputError
from autolung.utils.atomic import TEMP_MARKER, is_partial_file, raise_if_write_failed

logger = logging.getLogger(__name__)

SEG_SUFFIX = "_seg"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# mkstemp creates 0600 files; preprocessed data should be as readable as any other output.
_FILE_MODE = 0o666 & ~_umask()


@dataclass(frozen=True)
class CasePaths:
    """The three files of one preprocessed case."""

    data: Path
    seg: Path
    properties: Path


def case_paths(folder: str | Path, case_id: str) -> CasePaths:
    """Paths of ``<case>.npy``, ``<case>_seg.npy`` and ``<case>.json`` in ``folder``."""
    folder = Path(folder)
    return CasePaths(folder / f"{case_id}.npy", folder / f"{case_id}{SEG_SUFFIX}.npy", folder / f"{case_id}.json")


def write_case(folder: str | Path, case_id: str, data: np.ndarray, seg: np.ndarray | None,
               properties: dict[str, Any]) -> CasePaths:
    """Write one case atomically: image, labels, then properties (the completion marker).

    Args:
        folder: configuration folder.
        case_id: case identifier.
        data: float32 ``(C, Z, Y, X)``.
        seg: int8 ``(1, Z, Y, X)`` or None.
        properties: JSON-serialisable properties.

    Returns:
        The written paths.
    """
    paths = case_paths(folder, case_id)
    with _cache_file(paths.data) as handle:
        np.save(handle, np.ascontiguousarray(data, dtype=np.float32), allow_pickle=False)
    if seg is not None:
        with _cache_file(paths.seg) as handle:
            np.save(handle, np.ascontiguousarray(seg), allow_pickle=False)
    _write_properties(paths.properties, properties)
    return paths


def _write_properties(path: Path, properties: dict[str, Any]) -> None:
    with _cache_file(path) as handle:
        handle.write(json.dumps(properties, separators=(",", ":")).encode("utf-8"))


@contextlib.contextmanager
def _cache_file(target: Path) -> Iterator[BinaryIO]:
    """Atomic write (temporary name + rename, as ``autolung.utils.atomic``) without fsync.

    Preprocessed files are a cache that can always be rebuilt, and fsync of every small file
    cost half the preprocessing time of a dataset of small images. A killed process still
    leaves either nothing or a complete file; after a power loss a file may be truncated, which
    :func:`is_case_complete` detects from the .npy header, so the case is redone.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{TEMP_MARKER}{target.stem}-", suffix=target.suffix, dir=target.parent)
    except OSError as exc:
        raise_if_write_failed(exc, target)
        raise
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(name, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        if isinstance(exc, OSError):  # a full disk or read-only folder: one line naming the file
            raise_if_write_failed(exc, target)
        raise


def link_case(source: CasePaths, folder: str | Path, case_id: str) -> CasePaths:
    """Give ``folder`` the files of an identical case written to another configuration folder.

    Hard links cost no space or time; each link is made under a temporary name and renamed, so a
    later atomic rewrite of either copy never changes the other. The properties come last, as
    in :func:`write_case`. Falls back to copying where the file system has no hard links.

    Args:
        source: the already written case.
        folder: the target configuration folder.
        case_id: case identifier.

    Returns:
        The target paths.
    """
    target = case_paths(folder, case_id)
    target.data.parent.mkdir(parents=True, exist_ok=True)
    for src, dst in ((source.data, target.data), (source.seg, target.seg), (source.properties, target.properties)):
        if not src.exists():
            continue
        temporary = dst.with_name(f"{TEMP_MARKER}{dst.stem}-{os.getpid()}{dst.suffix}")
        try:
            os.link(src, temporary)
        except OSError:
            shutil.copyfile(src, temporary)
        os.replace(temporary, dst)
    return target


def npy_is_complete(path: str | Path) -> bool:
    """True when a .npy file's size matches the array its header describes (not truncated)."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(handle)
            expected = handle.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return os.path.getsize(path) == expected
    except (OSError, ValueError):
        return False


def read_properties(path: str | Path) -> dict[str, Any] | None:
    """Properties of a case, or None when the file is missing or unreadable (an unfinished case)."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def is_case_complete(folder: str | Path, case_id: str, plans_digest: str, needs_seg: bool = True) -> bool:
    """True when all files of a case exist and were made with the plans of ``plans_digest``.

    Args:
        folder: configuration folder.
        case_id: case identifier.
        plans_digest: ``Plans.digest()`` of the current plans.
        needs_seg: whether the case has labels (training cases do).

    Returns:
        Whether the case can be skipped.
    """
    paths = case_paths(folder, case_id)
    properties = read_properties(paths.properties)
    if properties is None or properties.get("plans_digest") != plans_digest:
        return False
    return npy_is_complete(paths.data) and (not needs_seg or npy_is_complete(paths.seg))


class PreprocessedDataset:
    """Read access to one preprocessed configuration folder.

    Example:
        >>> ds = PreprocessedDataset(root.preprocessed_configuration("Demo_LungCT", "3d_fullres"))
        >>> data, seg, props = ds.load(ds.case_ids[0])   # memory-mapped arrays
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InvalidInputError("preprocessed folder not found; run `autolung preprocess` first",
                                    path=self.folder)
        self.case_ids = self._complete_case_ids()

    def _complete_case_ids(self) -> list[str]:
        ids = []
        for path in sorted(self.folder.glob("*.json")):
            if is_partial_file(path):
                continue
            if (self.folder / f"{path.stem}.npy").is_file():
                ids.append(path.stem)
        return ids

    def __len__(self) -> int:
        return len(self.case_ids)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self.case_ids

    def paths(self, case_id: str) -> CasePaths:
        """The files of ``case_id``."""
        return case_paths(self.folder, case_id)

    def load_properties(self, case_id: str) -> dict[str, Any]:
        """The properties dict of ``case_id``."""
        path = self.paths(case_id).properties
        properties = read_properties(path)
        if properties is None:
            raise InvalidInputError("properties file missing or not valid JSON", path=path)
        return properties

    def load(self, case_id: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Image, labels and properties of one case.

        Args:
            case_id: case identifier.
            mmap: memory-map the arrays (read-only) instead of reading them into memory.

        Returns:
            ``(data (C, Z, Y, X) float32, seg (1, Z, Y, X) int8 or None, properties)``.
        """
        paths = self.paths(case_id)
        mode = "r" if mmap else None
        try:
            data = np.load(paths.data, mmap_mode=mode, allow_pickle=False)
            seg = np.load(paths.seg, mmap_mode=mode, allow_pickle=False) if paths.seg.is_file() else None
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"cannot read preprocessed arrays ({exc})", path=paths.data) from None
        return data, seg, self.load_properties(case_id)
