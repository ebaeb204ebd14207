"""``autolung export_model`` and ``install_model``: trained models as single, verified files."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from autolung import api
from autolung_cli.app import app
from autolung_cli.common import TRAINED_PLANNER_HELP, data_root, root_option
from autolung_cli.multivalue import multi_value_command

_console = Console(stderr=True)


@app.command("export_model", help="Bundle trained folds, plans and postprocessing into one zip with checksums.",
             cls=multi_value_command("-c", "--configuration", "-f", "--folds"))
def export_model_command(
    dataset: str = typer.Option(..., "-d", "--dataset", help="Dataset name (its folder under results/)."),
    configurations: Optional[List[str]] = typer.Option(None, "-c", "--configuration",
                                                       help="Configuration(s); default: the stored choice."),
    folds: Optional[List[str]] = typer.Option(None, "-f", "--folds",
                                              help="Folds (numbers, or 'all'); default: every finished numbered "
                                                   "fold, else fold all."),
    planner: Optional[str] = typer.Option(None, "--planner", help=TRAINED_PLANNER_HELP),
    output: Path = typer.Option(..., "-o", "--output", help="Bundle to write (model.zip)."),
    root: Optional[Path] = root_option(),
) -> None:
    resolved = data_root(root)
    names = api.model_configurations(dataset, resolved, configurations, planner)
    api.export_model(dataset, resolved, names, output,
                     [f for value in folds or [] for f in value.split(",") if f] or None)
    _console.print(f"exported {', '.join(names)} to {output}")


@app.command("install_model", help="Verify a model bundle, or translate an nnU-Net v2 model folder or zip, "
                                   "and install it into <root>/results/.",
             cls=multi_value_command("-c", "--configuration", "-f", "--folds"))
def install_model_command(
    bundle: Path = typer.Argument(..., help="The model zip, or an nnU-Net v2 model folder "
                                            "(<trainer>__<plans>__<configuration>/, or a folder of them) or export zip."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace installed configurations."),
    configurations: Optional[List[str]] = typer.Option(None, "-c", "--configuration",
                                                       help="nnU-Net models: configuration(s) to install; default: all."),
    folds: Optional[List[int]] = typer.Option(None, "-f", "--folds",
                                              help="nnU-Net models: folds to install; default: every fold."),
    root: Optional[Path] = root_option(),
) -> None:
    destination = api.install_model(bundle, data_root(root), overwrite, configurations or None, folds or None)
    _console.print(f"installed into {destination}")


app.command("export-model", hidden=True)(export_model_command)
app.command("install-model", hidden=True)(install_model_command)
