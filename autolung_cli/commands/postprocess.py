"""``autolung determine_postprocessing`` and ``apply_postprocessing``: component rules on any folder."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from autolung import api
from autolung.paths import DataRoot
from autolung_cli.app import app
from autolung_cli.common import TRAINED_PLANNER_HELP, data_root, root_option
from autolung_cli.commands.evaluate import _parse_labels

_console = Console()


@app.command("determine_postprocessing",
             help="Choose per label the connected-component rules that raise the mean Dice of a prediction "
                  "folder against references; writes postprocessing.json.")
def determine_postprocessing_command(
    prediction: Path = typer.Option(..., "-p", "--prediction", help="Folder of predicted label maps."),
    reference: Path = typer.Option(..., "-r", "--reference", help="Folder of reference label maps."),
    labels: Optional[List[str]] = typer.Option(None, "-l", "--labels",
                                               help="Labels in the order to consider (repeat; '1,2' is a region). "
                                                    "Default: every label in the references."),
    ignore_label: Optional[int] = typer.Option(None, "--ignore-label",
                                               help="Reference value of unannotated voxels; left out of the Dice."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Rules file to write (default: <prediction>/postprocessing.json)."),
) -> None:
    output = output or prediction / "postprocessing.json"
    result = api.determine_postprocessing(prediction, reference, labels=_parse_labels(labels),
                                          ignore_label=ignore_label, output_json=output)
    for key, before in result["dice_before"].items():
        _console.print(f"label {key}: mean Dice {before:.4f} -> {result['dice_after'][key]:.4f}")
    _console.print(f"{len(result['rules'])} rule(s) from {result['num_cases']} cases written to {output}")


@app.command("apply_postprocessing",
             help="Apply a postprocessing.json (or inference_choice.json) to every label map of a folder.")
def apply_postprocessing_command(
    input_folder: Path = typer.Option(..., "-i", "--input", help="Folder of label maps."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder (not the input folder)."),
    rules: Path = typer.Option(..., "--pp", "--postprocessing",
                               help="postprocessing.json or inference_choice.json."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo cases whose output exists."),
) -> None:
    written = api.apply_postprocessing(input_folder, output, rules, overwrite)
    _console.print(f"{len(written)} postprocessed masks in {output}")


@app.command("plot_overlays",
             help="One QC picture per training case of a raw (or, with -c, preprocessed) dataset, labels "
                  "outlined in red, to catch label problems before training.")
def plot_overlays_command(
    dataset: str = typer.Option(..., "-d", "--dataset", help="Dataset folder name under raw/, or a path."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for <case>.png."),
    configuration: Optional[str] = typer.Option(None, "-c", "--configuration",
                                                help="Show this preprocessed configuration instead of the raw "
                                                     "images (network grid, normalised intensities)."),
    planner: Optional[str] = typer.Option(None, "--planner", help=TRAINED_PLANNER_HELP),
    num_processes: int = typer.Option(1, "-np", "--num-processes", help="Worker processes."),
    num_slices: int = typer.Option(6, "--num-slices", help="Slices per picture."),
    root: Optional[Path] = root_option(),
) -> None:
    written = api.plot_overlays(dataset, data_root(root), output, configuration, planner, num_processes, num_slices)
    _console.print(f"{len(written)} QC pictures in {output}")


@app.command("transfer_plans",
             help="Copy a dataset's plans to another dataset (its own labels kept), to pretrain on one and "
                  "fine-tune on the other with train --pretrained-weights.")
def transfer_plans_command(
    source: str = typer.Option(..., "-s", "--source", help="Planned source dataset (name or folder)."),
    target: str = typer.Option(..., "-t", "--target", help="Target dataset (name under raw/, or a path)."),
    source_planner: Optional[str] = typer.Option(None, "-sp", "--source-planner",
                                                 help="Which plans of the source (default: its only plans)."),
    target_planner: Optional[str] = typer.Option(None, "-tp", "--target-planner",
                                                 help="Name of the target's plans (default: the source planner)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing target plans."),
    root: Optional[Path] = root_option(),
) -> None:
    written = api.transfer_plans(source, target, data_root(root), source_planner, target_planner, overwrite)
    _console.print(f"plans written to {written}; preprocess and train the target with --planner "
                   f"{DataRoot.planner_of_plans_file(written)}")


app.command("transfer-plans", hidden=True)(transfer_plans_command)
app.command("plot-overlays", hidden=True)(plot_overlays_command)
app.command("determine-postprocessing", hidden=True)(determine_postprocessing_command)
app.command("apply-postprocessing", hidden=True)(apply_postprocessing_command)
