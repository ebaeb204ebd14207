"""``autolung export_model`` and ``install_model``: trained models as single, verified files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from autolung.errors import InvalidInputError
from autolung.paths import DataRoot
from autolung_cli.app import app
from autolung_cli.common import TRAINED_PLANNER_HELP, data_root, root_option
from autolung_cli.multivalue import multi_value_command

_console = Console(stderr=True)


def _configuration_folders(root: DataRoot, dataset_name: str, configurations: Optional[List[str]],
                           planner: Optional[str]) -> list[str]:
    """Folder names to export: the given configurations, else the stored choice, else all trained."""
    from autolung.planning.registry import planner_in_use, planners_with_trained

    results_dataset = root.results_dataset(dataset_name)
    if configurations:
        bare = [c for c in configurations if "__" not in c]
        if bare:
            planner = planner_in_use(planner, planners_with_trained(root, dataset_name, bare), dataset_name,
                                     "trained configurations")
        return [c if "__" in c else f"{c}__{planner}" for c in configurations]
    choice = results_dataset / "inference_choice.json"
    if choice.is_file():
        return [entry["folder"] for entry in json.loads(choice.read_text())["configurations"]]
    found = sorted(p.name for p in results_dataset.glob("*__*") if p.is_dir())
    if not found:
        raise InvalidInputError("no trained configurations found", path=results_dataset)
    return found


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
    from autolung.inference.bundle import export_model

    resolved = data_root(root)
    results_dataset = resolved.results_dataset(Path(dataset).name)
    if not results_dataset.is_dir():
        raise InvalidInputError("no trained models for this dataset", path=results_dataset)
    names = _configuration_folders(resolved, Path(dataset).name, configurations, planner)
    export_model(results_dataset, names, output, [f for value in folds or [] for f in value.split(",") if f] or None)
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
    from autolung import api

    destination = api.install_model(bundle, data_root(root), overwrite, configurations or None, folds or None)
    _console.print(f"installed into {destination}")


app.command("export-model", hidden=True)(export_model_command)
app.command("install-model", hidden=True)(install_model_command)
