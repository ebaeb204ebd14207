from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autolung.errors import LockedError
from autolung.utils.locking import LOCK_NAME, folder_lock


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
