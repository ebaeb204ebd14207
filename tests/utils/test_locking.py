from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from autolung.errors import LockedError
from autolung.utils.locking import LOCK_NAME, file_lock, folder_lock


def test_second_holder_is_refused_while_owner_lives(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import socket
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                                       "purpose": "predict"}))
        with pytest.raises(LockedError, match=f"pid {sleeper.pid}"):
            with folder_lock(tmp_path):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_lock_from_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with folder_lock(tmp_path) as lock:
        assert json.loads(lock.read_text())["pid"] != dead.pid
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_released_after_exception(tmp_path):
    with pytest.raises(RuntimeError):
        with folder_lock(tmp_path):
            raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()


def test_threads_of_one_process_take_turns(tmp_path):
    """A lock file names only the PID: another thread's lock must not look stale to this one."""
    lock = tmp_path / "record.lock"
    inside: list[int] = []
    overlaps: list[int] = []

    def hold(index: int) -> None:
        with file_lock(lock, "record", wait_s=10.0):
            inside.append(index)
            if len(inside) > 1:
                overlaps.append(index)
            time.sleep(0.05)
            inside.remove(index)

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []
    assert not lock.exists()


def test_a_thread_is_refused_while_another_holds_the_lock(tmp_path):
    lock = tmp_path / "record.lock"
    errors: list[BaseException] = []

    def try_lock() -> None:
        try:
            with file_lock(lock, "record"):
                pass
        except LockedError as exc:
            errors.append(exc)

    with file_lock(lock, "record"):
        thread = threading.Thread(target=try_lock)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "another thread" in str(errors[0])
    with file_lock(lock, "record"):  # released: taken again at once
        assert lock.exists()
