"""``autolung download`` (public datasets) and ``autolung convert`` (folders <-> datasets)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TaskID, TextColumn,
                           TimeRemainingColumn, TransferSpeedColumn)

from autolung.datasets_remote import install_dataset, resolve_remote_dataset
from autolung.datasets_remote.catalog import known_names
from autolung_cli.app import app
from autolung_cli.common import data_root, dataset_folder, root_option
from autolung_cli.multivalue import multi_value_command

_console = Console(stderr=True)


class _DownloadBars:
    """Rich progress bars: bytes while downloading, then files while unpacking."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._phase = ""

    def _start(self, phase: str, columns: tuple) -> None:
        if self._phase == phase:
            return
        self.close()
        self._progress = Progress(TextColumn(phase), BarColumn(), *columns, console=_console)
        self._progress.start()
        self._task = self._progress.add_task(phase, total=None)
        self._phase = phase

    def on_bytes(self, done: int, total: int | None) -> None:
        self._start("download", (DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()))
        self._progress.update(self._task, completed=done, total=total)

    def on_members(self, done: int, total: int) -> None:
        self._start("unpack", (MofNCompleteColumn(),))
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@app.command("download", help="Download a Medical Segmentation Decathlon task into <root>/raw/<name>. "
                              f"Names: {', '.join(known_names())}.")
def download_command(
    name: str = typer.Argument(..., help="Decathlon_<Organ> (e.g. Decathlon_Lung) or TaskNN_<Organ> (Task06_Lung)."),
    root: Optional[Path] = root_option(),
    url: Optional[str] = typer.Option(None, "--url", help="Fetch the archive from this URL (a mirror)."),
    md5: Optional[str] = typer.Option(None, "--md5", help="Expected md5 of the archive (overrides the table)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing raw/<name>."),
    keep_archive: bool = typer.Option(False, "--keep-archive", help="Keep the tar in <root>/downloads."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    remote = resolve_remote_dataset(name, url=url, md5=md5)
    roots = data_root(root)
    if no_progress:
        folder = install_dataset(remote, roots, overwrite=overwrite, keep_archive=keep_archive)
    else:
        bars = _DownloadBars()
        try:
            folder = install_dataset(remote, roots, overwrite=overwrite, keep_archive=keep_archive,
                                     download_progress=bars.on_bytes, unpack_progress=bars.on_members)
        finally:
            bars.close()
    typer.echo(f"installed {folder}")


convert_app = typer.Typer(name="convert", no_args_is_help=True,
                          help="Convert between plain image/mask folders, dataset layouts and 2D slices.")
app.add_typer(convert_app, name="convert")

_INPUT_DATASET_HELP = "Dataset folder, or a dataset name under <root>/raw."
_OVERWRITE_HELP = "Replace the output folder if it exists and is not empty."


@contextlib.contextmanager
def _case_bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar counting cases; yields its update callback (None when disabled)."""
    if not enabled:
        yield None
        return
    with Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=_console) as progress:
        task = progress.add_task(description, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


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
    # Deferred imports: the imaging libraries are slow to load and most commands never need them.
    from autolung.convert import PairsOptions, convert_pairs, parse_labels

    options = PairsOptions(image_patterns=tuple(image_pattern), mask_pattern=mask_pattern, layout=layout,
                           labels=parse_labels(labels) if labels else None,
                           channel_names=tuple(channel_name) if channel_name else None, file_ending=file_ending,
                           allow_unlabelled=allow_unlabelled, overwrite=overwrite)
    with _case_bar("convert", not no_progress) as progress:
        folder = convert_pairs(input_folder, output, options, progress=progress)
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
    from autolung.convert import convert_slices

    source = dataset_folder(input_dataset, data_root(root))
    with _case_bar("slice", not no_progress) as progress:
        folder = convert_slices(source, output, axis=axis, only_labelled=only_labelled, overwrite=overwrite,
                                progress=progress)
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
    from autolung.convert import convert_layout

    source = dataset_folder(input_dataset, data_root(root))
    with _case_bar("convert", not no_progress) as progress:
        folder = convert_layout(source, output, to, file_ending=file_ending, overwrite=overwrite, progress=progress)
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
    from autolung.convert import export_pairs

    source = dataset_folder(input_dataset, data_root(root))
    with _case_bar("export", not no_progress) as progress:
        folder = export_pairs(source, output, image_pattern, mask_pattern, overwrite=overwrite, progress=progress)
    typer.echo(f"wrote {folder}")
