"""``autolung download`` (public datasets) and ``autolung convert`` (folders <-> datasets)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TaskID, TextColumn,
                           TimeRemainingColumn, TransferSpeedColumn)

from autolung import api
from autolung_cli.app import app
from autolung_cli.common import data_root, dataset_folder, root_option
from autolung_cli.multivalue import multi_value_command
from autolung_cli.progress import progress_reporter

_console = Console(stderr=True)


class _DownloadBars:
    """A :class:`autolung.progress.ProgressReporter` drawing bytes while downloading, then files while unpacking."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._phase = ""

    def start(self, task: str, total: int | None) -> None:
        if self._phase != task:
            self.close()
            columns = ((DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()) if task == "download"
                       else (MofNCompleteColumn(),))
            self._progress = Progress(TextColumn(task), BarColumn(), *columns, console=_console)
            self._progress.start()
            self._phase = task
            self._task = self._progress.add_task(task, total=total)
        else:
            self._progress.reset(self._task, total=total)

    def advance(self, task: str, steps: int = 1) -> None:
        if self._progress is not None and task == self._phase:
            self._progress.advance(self._task, steps)

    def finish(self, task: str) -> None:
        if task == self._phase:
            self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self._phase = ""


@app.command("download", help="Download a Medical Segmentation Decathlon task into <root>/raw/<name>. "
                              f"Names: {', '.join(api.remote_dataset_names())}.")
def download_command(
    name: str = typer.Argument(..., help="Decathlon_<Organ> (e.g. Decathlon_Lung) or TaskNN_<Organ> (Task06_Lung)."),
    root: Optional[Path] = root_option(),
    url: Optional[str] = typer.Option(None, "--url", help="Fetch the archive from this URL (a mirror)."),
    md5: Optional[str] = typer.Option(None, "--md5", help="Expected md5 of the archive (overrides the table)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing raw/<name>."),
    keep_archive: bool = typer.Option(False, "--keep-archive", help="Keep the tar in <root>/downloads."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    bars = None if no_progress else _DownloadBars()
    try:
        folder = api.download(name, data_root(root), url=url, md5=md5, progress=bars, overwrite=overwrite,
                              keep_archive=keep_archive)
    finally:
        if bars is not None:
            bars.close()
    typer.echo(f"installed {folder}")


convert_app = typer.Typer(name="convert", no_args_is_help=True,
                          help="Convert between plain image/mask folders, dataset layouts and 2D slices.")
app.add_typer(convert_app, name="convert")

_INPUT_DATASET_HELP = "Dataset folder, or a dataset name under <root>/raw."
_OVERWRITE_HELP = "Replace the output folder if it exists and is not empty."


@convert_app.command("pairs", cls=multi_value_command("--labels", "--image-pattern", "--channel-name"),
                     help="Folder of image/mask pairs -> dataset (dataset.json written, inputs untouched).")
def convert_pairs_command(
    input_folder: Path = typer.Option(..., "-i", "--input", help="Folder holding the pairs."),
    image_pattern: list[str] = typer.Option(..., "--image-pattern",
                                            help="e.g. '{case}_img.nii.gz'; one per channel."),
    mask_pattern: str = typer.Option(..., "--mask-pattern", help="e.g. '{case}_mask.nii.gz'."),
    output: Path = typer.Option(..., "-o", "--output", help="Dataset folder to create."),
    layout: str = typer.Option("nnunet", "--layout", help="nnunet or msd."),
    labels: Optional[list[str]] = typer.Option(None, "--labels",
                                               help="background=0 lung=1 ... (default: values found in masks)."),
    channel_name: Optional[list[str]] = typer.Option(None, "--channel-name", help="Name per channel (default CT)."),
    file_ending: Optional[str] = typer.Option(None, "--file-ending", help="Image ending in the dataset (nnunet)."),
    allow_unlabelled: bool = typer.Option(False, "--allow-unlabelled", help="Images without mask go to imagesTs."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    options = api.pairs_options(image_pattern, mask_pattern, labels, layout=layout,
                                channel_names=tuple(channel_name) if channel_name else None,
                                file_ending=file_ending, allow_unlabelled=allow_unlabelled, overwrite=overwrite)
    folder = api.convert("pairs", input_folder, output, options, progress=progress_reporter(not no_progress))
    typer.echo(f"wrote {folder}")


@convert_app.command("slices", help="3D dataset -> 2D dataset of its slices (nnU-Net layout, 2D .nii.gz).")
def convert_slices_command(
    input_dataset: str = typer.Option(..., "-i", "--input", help=_INPUT_DATASET_HELP),
    output: Path = typer.Option(..., "-o", "--output", help="2D dataset folder to create."),
    axis: int = typer.Option(0, "--axis", help="Array axis to slice along: 0 (z), 1 (y), 2 (x)."),
    only_labelled: bool = typer.Option(False, "--only-labelled", help="Keep only slices with foreground."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
    root: Optional[Path] = root_option(),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    source = dataset_folder(input_dataset, data_root(root))
    folder = api.convert("slices", source, output, axis=axis, only_labelled=only_labelled, overwrite=overwrite,
                         progress=progress_reporter(not no_progress))
    typer.echo(f"wrote {folder}")


@convert_app.command("layout", help="Decathlon <-> nnU-Net v2 raw layout (4D images <-> _0000, _0001 channels).")
def convert_layout_command(
    input_dataset: str = typer.Option(..., "-i", "--input", help=_INPUT_DATASET_HELP),
    output: Path = typer.Option(..., "-o", "--output", help="Dataset folder to create."),
    to: str = typer.Option(..., "--to", help="nnunet or msd."),
    file_ending: Optional[str] = typer.Option(None, "--file-ending", help="Image ending of nnunet output."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
    root: Optional[Path] = root_option(),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    source = dataset_folder(input_dataset, data_root(root))
    folder = api.convert("layout", source, output, to, file_ending=file_ending, overwrite=overwrite,
                         progress=progress_reporter(not no_progress))
    typer.echo(f"wrote {folder}")


@convert_app.command("export", help="Dataset -> plain folder of image/mask pairs (the reverse of 'pairs').")
def convert_export_command(
    input_dataset: str = typer.Option(..., "-i", "--input", help=_INPUT_DATASET_HELP),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to create."),
    image_pattern: str = typer.Option(..., "--image-pattern",
                                      help="e.g. '{case}_img.nii.gz'; '{channel}' splits channels."),
    mask_pattern: str = typer.Option(..., "--mask-pattern", help="e.g. '{case}_mask.nii.gz'."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
    root: Optional[Path] = root_option(),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    source = dataset_folder(input_dataset, data_root(root))
    folder = api.convert("export", source, output, image_pattern, mask_pattern, overwrite=overwrite,
                         progress=progress_reporter(not no_progress))
    typer.echo(f"wrote {folder}")
