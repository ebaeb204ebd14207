"""Shared helpers for the reliability tests: running the real CLI and snapshotting folders."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import autolung_cli.app as app_module

REPO = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("AUTOLUNG_ROOT", None)
    return env


def run_cli_subprocess(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m autolung_cli <args>`` in a fresh process, with a timeout."""
    return subprocess.run([sys.executable, "-m", "autolung_cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(), cwd=REPO)


def run_cli_inprocess(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                      *args: str) -> tuple[int, str, str]:
    """The real entry point (``autolung_cli.app.main``) in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["autolung", *args])
    try:
        app_module.main()
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folders``: path -> (size, mtime_ns)."""
    state = {}
    for folder in folders:
        if not folder.exists():
            state[str(folder)] = (-1, -1)
            continue
        for path in [folder, *folder.rglob("*")]:
            info = path.lstat()
            state[str(path)] = (info.st_size if path.is_file() else 0, info.st_mtime_ns)
    return state


def assert_one_line_error(code: int, stdout: str, stderr: str, path: Path | str, *words: str) -> str:
    """Non-zero exit, exactly one ``error:`` line naming ``path`` (and one of ``words``), no traceback."""
    assert code != 0, stdout + stderr
    assert "Traceback" not in stdout + stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    line = errors[0]
    assert str(path) in line, f"{path} not named in {line!r}"
    assert "unexpected" not in line, line
    if words:
        assert any(word.lower() in line.lower() for word in words), f"none of {words} in {line!r}"
    return line
