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
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from autolung.errors import LockedError, WriteFailedError
from autolung.utils.atomic import raise_if_write_failed

logger = logging.getLogger(__name__)

LOCK_NAME = ".autolung.lock"

# Lock files this process holds. A lock file records only the PID, so without this a thread would
# take another thread's lock for a stale one left by this process (export workers share a record).
_HELD_HERE: set[str] = set()
_HELD_HERE_GUARD = threading.Lock()


def _claim_in_process(lock: Path) -> None:
    key = os.path.abspath(lock)
    with _HELD_HERE_GUARD:
        if key in _HELD_HERE:
            raise LockedError("another thread of this process holds the lock", path=lock.parent)
        _HELD_HERE.add(key)


def _release_in_process(lock: Path) -> None:
    with _HELD_HERE_GUARD:
        _HELD_HERE.discard(os.path.abspath(lock))


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
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise_if_write_failed(exc, folder)
        raise
    with file_lock(folder / LOCK_NAME, purpose):
        yield folder / LOCK_NAME


@contextlib.contextmanager
def file_lock(lock: str | Path, purpose: str = "autolung", wait_s: float = 0.0) -> Iterator[Path]:
    """Hold the lock file ``lock`` (in an existing folder) for the duration of the block.

    Args:
        lock: the lock file's path.
        purpose: what the owner does, shown to a refused second process.
        wait_s: keep trying this long while a live process holds it (0: refuse at once).

    Returns:
        A context manager yielding the lock path.

    Raises:
        LockedError: another live process on this host still holds the lock.
    """
    lock = Path(lock)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            _claim_in_process(lock)
            try:
                _acquire(lock, purpose)
            except BaseException:
                _release_in_process(lock)
                raise
            break
        except LockedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        _release_in_process(lock)


FRESH_LOCK_S = 2.0


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def lock_owner(lock: str | Path) -> int | None:
    """The PID recorded in a lock file, or None."""
    pid = _read_owner(Path(lock)).get("pid")
    return int(pid) if isinstance(pid, int) else None


def _acquire(lock: Path, purpose: str) -> None:
    folder = lock.parent
    if not _try_create(lock, purpose):
        owner = _read_owner(lock)
        pid = int(owner.get("pid", -1))
        same_host = owner.get("host") == socket.gethostname()
        if pid > 0 and same_host and process_alive(pid) and pid != os.getpid():
            raise LockedError(f"another autolung run (pid {pid}, {owner.get('purpose', '?')}) is writing this "
                              f"folder; wait for it or stop it", path=folder)
        if not owner and _age_s(lock) < FRESH_LOCK_S:
            # Created this instant by another process and not yet written: not stale, only early.
            raise LockedError("another autolung run is taking the lock", path=folder)
        gone = "which this process no longer holds" if pid == os.getpid() else "which is no longer running"
        logger.warning("%s: removing a stale lock left by pid %s, %s", folder, pid, gone)
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        if not _try_create(lock, purpose):
            raise LockedError("another autolung run took the lock at the same moment", path=folder)
