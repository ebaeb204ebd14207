"""The CLI reaches the library only through its composition layer (``autolung.api``).

Allowed besides ``autolung.api``: ``autolung.errors`` (errors the CLI turns into one line),
``autolung.paths`` (resolving ``--root`` and ``-d``) and ``autolung.progress`` (the protocol the
CLI's bars implement). Every other ``autolung.*`` import in ``autolung_cli/`` is a second place
composing the pipeline.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from autolung import api
from autolung.errors import DatasetProblemsError

CLI_PACKAGE = Path(__file__).resolve().parents[2] / "autolung_cli"
ALLOWED = {"autolung.api", "autolung.errors", "autolung.paths", "autolung.progress"}


def _library_imports(path: Path) -> list[str]:
    """Every ``autolung.<module>`` a file imports, at any depth (``from autolung import x`` is autolung.x)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "autolung":
                found += [f"autolung.{alias.name}" for alias in node.names]
            else:
                found.append(node.module)
    return [name for name in found if name == "autolung" or name.startswith("autolung.")]


def test_cli_imports_the_library_only_through_api_errors_paths_and_progress() -> None:
    modules = sorted(CLI_PACKAGE.rglob("*.py"))
    assert len(modules) > 10, "autolung_cli not found"
    offending = [f"{path.relative_to(CLI_PACKAGE.parent)}: {name}"
                 for path in modules for name in _library_imports(path) if name not in ALLOWED]
    assert offending == []


def test_the_checker_sees_every_import_form(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import autolung.training.run\nfrom autolung import api, demo\n"
                      "def f():\n    from autolung.inference.predictor import predict_paths\n"
                      "from autolung_cli.app import app\nimport autolungx\n")
    assert _library_imports(sample) == ["autolung.training.run", "autolung.api", "autolung.demo",
                                        "autolung.inference.predictor"]


def test_verify_problems_are_formatted_once(tiny_msd: Path, data_root) -> None:
    (tiny_msd / "labelsTr" / "case_001.nii.gz").unlink()
    (tiny_msd / "labelsTr" / "case_002.nii.gz").unlink()
    with pytest.raises(DatasetProblemsError) as everything:
        api.check_dataset("Tiny_CT", data_root)
    assert len(everything.value.problems) == 2 and everything.value.num_cases == 4
    message = str(everything.value)
    assert message.startswith(f"{tiny_msd}: 2 problem(s) found in 4 case(s): ")
    assert "case_001.nii.gz: missing label file" in message and "case_002.nii.gz" in message
    with pytest.raises(DatasetProblemsError, match=r"4 case\(s\): \S+case_001.nii.gz: missing label file "
                                                   r"\(and 1 more\)$"):
        api.check_dataset("Tiny_CT", data_root, max_listed=1)
    with pytest.raises(DatasetProblemsError, match=r"2 problem\(s\) found in 4 case\(s\)$"):
        api.check_dataset("Tiny_CT", data_root, max_listed=0)
    with pytest.raises(DatasetProblemsError):
        api.plan_and_preprocess("Tiny_CT", data_root, run_verify=True, num_processes=1)
    assert not data_root.plans_file("Tiny_CT").exists()


def test_clean_recomputes_the_fingerprint_for_api_callers_too(tiny_msd: Path, data_root) -> None:
    fingerprint = data_root.fingerprint_file("Tiny_CT")
    api.fingerprint("Tiny_CT", data_root, num_processes=1)
    written = fingerprint.read_text()
    fingerprint.write_text(written.replace('"num_cases"', '"num_cases" ', 1))  # same JSON, other bytes
    api.plan("Tiny_CT", data_root, num_processes=1)
    assert fingerprint.read_text() != written  # reused as it was
    plans = api.plan("Tiny_CT", data_root, num_processes=1, clean=True)
    assert fingerprint.read_text() == written and plans.configurations
