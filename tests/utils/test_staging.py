"""Staged folder writes: atomic swaps, and recovery after a writer was killed outright."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autolung.utils.staging import _OLD_PREFIX, STAGING_PREFIX, recover_interrupted, staged_folder


def dead_pid() -> int:
    """The id of a process that has already exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_staged_write_replaces_the_folder_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with staged_folder(target) as staging:
        assert staging.name.startswith(f"{STAGING_PREFIX}{os.getpid()}-out-")
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert hidden(tmp_path) == []


def test_failed_write_keeps_the_old_folder(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_folder(target) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert (target / "old.txt").read_text() == "old"
    assert hidden(tmp_path) == []


def test_staging_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "out"
    killer = textwrap.dedent(f"""
        import os, signal
        from autolung.utils.staging import staged_folder
        with staged_folder({str(target)!r}) as staging:
            (staging / "half.txt").write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", killer], capture_output=True)
    assert result.returncode == -9
    assert not target.exists()
    assert len(hidden(tmp_path)) == 1                         # the killed writer's staging folder
    with staged_folder(target) as staging:
        (staging / "full.txt").write_text("full")
    assert sorted(p.name for p in target.iterdir()) == ["full.txt"]
    assert hidden(tmp_path) == []


def test_previous_copy_moved_aside_by_a_killed_swap_is_restored(tmp_path):
    pid = dead_pid()
    old = tmp_path / f"{_OLD_PREFIX}{pid}-out-abcd_123"
    old.mkdir()
    (old / "kept.txt").write_text("kept")
    staging = tmp_path / f"{STAGING_PREFIX}{pid}-out-zz9_abcd"
    staging.mkdir()
    handled = recover_interrupted(tmp_path / "out")
    assert sorted(p.name for p in handled) == sorted([old.name, staging.name])
    assert (tmp_path / "out" / "kept.txt").read_text() == "kept"
    assert hidden(tmp_path) == []


def test_live_writers_and_other_targets_are_left_alone(tmp_path):
    pid = dead_pid()
    live = tmp_path / f"{STAGING_PREFIX}{os.getpid()}-out-abcdefgh"
    other_target = tmp_path / f"{STAGING_PREFIX}{pid}-out-b-abcdefgh"   # a staging of "out-b"
    other_old = tmp_path / f"{_OLD_PREFIX}{pid}-out-b-abcdefgh"
    for folder in (live, other_target, other_old):
        folder.mkdir()
    assert recover_interrupted(tmp_path / "out") == []
    assert not (tmp_path / "out").exists()
    assert hidden(tmp_path) == sorted(p.name for p in (live, other_target, other_old))
