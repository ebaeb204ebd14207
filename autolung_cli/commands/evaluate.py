"""``autolung evaluate``: metrics of predicted label maps against references."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from autolung import api
from autolung.errors import InvalidInputError
from autolung_cli.app import app

_console = Console()


def _parse_labels(values: Optional[List[str]]) -> Optional[list]:
    """``-l 1 -l 2 -l 1,2``: labels, or regions written as comma-separated label values."""
    if not values:
        return None
    parsed = []
    for value in values:
        try:
            parts = [int(v) for v in value.split(",")]
        except ValueError:
            raise InvalidInputError(f"label {value!r} is not an integer or a comma-separated list") from None
        parsed.append(parts[0] if len(parts) == 1 else tuple(parts))
    return parsed


def rich_table(table: object) -> Table:
    """Draw the library's summary rows as a rich Table (numbers right-aligned)."""
    drawn = Table(title=table.title)
    for index, name in enumerate(table.columns):
        drawn.add_column(name, justify="left" if index == 0 else "right")
    for row in table.rows:
        drawn.add_row(*row)
    return drawn


@app.command("evaluate", help="Dice, IoU, precision, recall, HD95, NSD, volumes and lesion metrics per case/class.")
def evaluate_command(
    reference: Path = typer.Option(..., "-r", "--reference", help="Folder of reference label maps."),
    prediction: Path = typer.Option(..., "-p", "--prediction", help="Folder of predicted label maps."),
    labels: Optional[List[str]] = typer.Option(None, "-l", "--labels",
                                               help="Labels to evaluate (repeat; '1,2' is a region). "
                                                    "Default: every label in the references."),
    tolerance_mm: float = typer.Option(2.0, "--tolerance-mm", help="Normalised surface Dice tolerance (mm)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Summary JSON (default: <prediction>/summary.json); "
                                               "the per-case CSV goes beside it."),
    ignore_label: Optional[int] = typer.Option(None, "--ignore-label",
                                               help="Reference value of unannotated voxels (dataset.json 'ignore'); "
                                                    "they count nowhere."),
    allow_missing: bool = typer.Option(False, "--allow-missing",
                                       help="Evaluate only the predicted cases when some reference cases have no "
                                            "prediction (listed in the summary); without it that is an error."),
) -> None:
    output = output or prediction / "summary.json"
    summary = api.evaluate(reference, prediction, labels=_parse_labels(labels), tolerance_mm=tolerance_mm,
                       output_json=output, ignore_label=ignore_label, allow_missing=allow_missing)
    _console.print(rich_table(api.summary_table(summary)))
    if summary["missing_predictions"]:
        missing = summary["missing_predictions"]
        _console.print(f"[yellow]warning: {len(missing)} reference case(s) without prediction were not evaluated: "
                       f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}[/yellow]")
    _console.print(f"mean foreground Dice {summary['mean_foreground_dice']:.4f}; summary written to {output}")
