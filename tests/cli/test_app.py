"""The Typer app registers every command module by a plain import."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

import autolung_cli
from autolung_cli.app import _register_commands, app


def test_every_command_module_is_registered() -> None:
    _register_commands()
    folder = Path(autolung_cli.__file__).parent / "commands"
    modules = {path.stem for path in folder.glob("*.py") if path.stem != "__init__"}
    assert modules and all(f"autolung_cli.commands.{name}" in sys.modules for name in modules)
    names = set(typer.main.get_command(app).commands)
    assert {"fingerprint", "plan", "preprocess", "plan_and_preprocess", "train", "predict", "evaluate",
            "demo", "benchmark", "report", "verify"} <= names
