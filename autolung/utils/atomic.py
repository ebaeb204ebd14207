"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader therefore sees either the old file or the complete new one, never half of it, even
when the process is killed mid-write.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from autolung.errors import WriteFailedError

TEMP_MARKER = ".partial-"


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` when the block succeeds.

    Args:
        target: the final file path.

    Returns:
        A context manager yielding the temporary path to write to. On an exception the
        temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Keep the real suffix last so libraries that pick a format by extension still work.
        fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_MARKER}{target.stem}-", suffix=_full_suffix(target),
                                        dir=target.parent)
    except OSError as exc:
        raise_if_write_failed(exc, target)
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the final file the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_current_umask())
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(target.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise_if_write_failed(exc, target)
        raise


# Errors that mean "this file cannot be written here", as opposed to, say, a missing input.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def raise_if_write_failed(exc: OSError, target: Path) -> None:
    """Re-raise a disk-full / read-only / permission error as one clear line naming ``target``."""
    if isinstance(exc, WriteFailedError) or exc.errno not in _WRITE_ERRNOS:
        return
    reason = os.strerror(exc.errno).lower()
    raise WriteFailedError(f"cannot write: {reason}; the file was left as it was", path=target,
                           errno=exc.errno) from exc


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _full_suffix(path: Path) -> str:
    suffixes = "".join(path.suffixes)
    return suffixes if len(suffixes) <= 12 else path.suffix


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to disk (best effort: not every FS allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json_atomic(path: str | Path, payload: Any, indent: int = 2) -> None:
    """Write ``payload`` as human-readable JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=indent, sort_keys=False) + "\n", encoding="utf-8")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    """Save ``array`` with ``np.save`` atomically (the file stays memory-mappable)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)


def is_partial_file(path: str | Path) -> bool:
    """True for leftovers of an interrupted atomic write."""
    return Path(path).name.startswith(TEMP_MARKER)


def remove_partial_files_of(targets: list[Path]) -> int:
    """Delete leftovers of interrupted atomic writes of exactly these targets; return how many.

    Only the temporary names :func:`atomic_path` gives each target are matched, so the partial
    files of other targets in the same folder (another process's cases) are left alone.
    """
    import re

    removed = 0
    for target in targets:
        pattern = re.compile(re.escape(f"{TEMP_MARKER}{target.stem}-") + r"[A-Za-z0-9_]{8}"
                             + re.escape(_full_suffix(target)))
        if not target.parent.is_dir():
            continue
        for leftover in target.parent.glob(f"{TEMP_MARKER}{target.stem}-*"):
            if pattern.fullmatch(leftover.name):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
                    removed += 1
    return removed


def remove_partial_files(folder: str | Path) -> int:
    """Delete leftovers of interrupted atomic writes in ``folder``; return how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for leftover in folder.glob(f"{TEMP_MARKER}*"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
            removed += 1
    return removed
