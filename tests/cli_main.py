"""Run ``autolung`` exactly as the console script does (errors become ``error: ...`` and exit 1)."""
from __future__ import annotations

import sys


def run_main(args, capsys, monkeypatch) -> tuple[int, str]:
    """Call :func:`autolung_cli.app.main` with ``args``; return ``(exit code, stdout + stderr)``."""
    from autolung_cli.app import main

    monkeypatch.setattr(sys, "argv", ["autolung", *[str(a) for a in args]])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out + captured.err
