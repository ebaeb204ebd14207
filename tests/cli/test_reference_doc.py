from __future__ import annotations

from pathlib import Path

from autolung_cli.reference import command_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_doc_is_generated_from_the_current_app():
    generated = command_reference()
    assert "## `autolung plan_and_preprocess`" in generated and "`--patch-size`" in generated
    assert DOC.read_text(encoding="utf-8") == generated, (
        "docs/cli.md is stale: run `python -m autolung_cli.reference > docs/cli.md`")
