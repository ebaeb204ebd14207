"""A lock file per output folder, so two runs never write the same folder at once.

The lock records the owner's PID and host. A lock whose process is gone (a run that was killed)
is stale: it is reported and taken over instead of blocking forever.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from autolung.errors import LockedError, WriteFailedError
from autolung.utils.atomic import raise_if_write_failed

logger = logging.getLogger(__name__)

LOCK_NAME = ".autolung.lock"


def process_alive(pid: int) -> bool:
    """True when a process with this id exists (possibly owned by another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_owner(lock: Path) -> dict:
    try:
        return json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _try_create(lock: Path, purpose: str) -> bool:
    payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose})
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise _lock_write_failed(exc, lock) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
    except OSError as exc:  # a full disk fails the write or the close: leave no empty lock behind
        with contextlib.suppress(OSError):
            lock.unlink()
        raise _lock_write_failed(exc, lock) from exc
    return True


def _lock_write_failed(exc: OSError, lock: Path) -> WriteFailedError:
    reason = os.strerror(exc.errno or 0).lower()
    hint = "is the disk full?" if exc.errno == errno.ENOSPC else "is the folder read-only?"
    return WriteFailedError(f"cannot create the lock file {LOCK_NAME}: {reason}; {hint}", path=lock.parent,
                            errno=exc.errno)


@contextlib.contextmanager
def folder_lock(folder: str | Path, purpose: str = "autolung") -> Iterator[Path]:
    """Hold ``<folder>/.autolung.lock`` for the duration of the block.

    Args:
        folder: the output folder (created when missing).
        purpose: a word saying what the owner does, shown to a refused second run.

    Returns:
        A context manager yielding the lock path.

    Raises:
        LockedError: another live process on this host holds the lock.
    """
    folder = Path(folder)
    lock = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise_if_write_failed(exc, folder)
        raise
    if not _try_create(lock, purpose):
        owner = _read_owner(lock)
        pid = int(owner.get("pid", -1))
        same_host = owner.get("host") == socket.gethostname()
        if pid > 0 and same_host and process_alive(pid) and pid != os.getpid():
            raise LockedError(f"another autolung run (pid {pid}, {owner.get('purpose', '?')}) is writing this "
                              f"folder; wait for it or stop it", path=folder)
        logger.warning("%s: removing a stale lock left by pid %s, which is no longer running", folder, pid)
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        if not _try_create(lock, purpose):
            raise LockedError("another autolung run took the lock at the same moment", path=folder)
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
