"""``autolung predict``, ``ensemble`` and ``find_best_configuration``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from autolung import api
from autolung.errors import InvalidInputError
from autolung_cli.app import app
from autolung_cli.common import TRAINED_PLANNER_HELP, data_root, dataset_name, root_option
from autolung_cli.multivalue import multi_value_command
from autolung_cli.progress import RichProgress

_console = Console(stderr=True)
FORMAT_ENDINGS = {"nii.gz": ".nii.gz", "nii": ".nii", "nrrd": ".nrrd", "mha": ".mha", "png": ".png"}
# Written besides the NIfTI masks, into OUTPUT/dicom/ (see autolung.reporting.dicom_outputs).
DICOM_FORMATS = ("dicom-seg", "rtstruct")


def split_values(values: Optional[List[str]]) -> list[str]:
    """Repeated options and comma lists alike: ``-f 0 -f 1`` and ``-f 0,1`` give ["0", "1"]."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _ending(output_format: Optional[str]) -> Optional[str]:
    if output_format is None or output_format in DICOM_FORMATS:
        return None
    if output_format not in FORMAT_ENDINGS:
        raise InvalidInputError(f"--format must be one of {', '.join([*FORMAT_ENDINGS, *DICOM_FORMATS])}, "
                                f"got {output_format!r}")
    return FORMAT_ENDINGS[output_format]


def _mirror_axes(value: Optional[str]) -> Optional[tuple[int, ...]]:
    """``zyx``, ``x``, ``yx`` or ``none`` as array axes (0=z, 1=y, 2=x)."""
    if value is None:
        return None
    letters = value.strip().lower()
    if letters == "none":
        return ()
    if not letters or any(letter not in "zyx" for letter in letters):
        raise InvalidInputError(f"--mirror-axes takes letters of zyx or none, got {value!r}")
    return tuple(sorted({"zyx".index(letter) for letter in letters}))


@app.command("predict", help="Segment images with trained models (folds averaged, test-time mirroring).",
             cls=multi_value_command("-c", "--configuration", "-f", "--folds"))
def predict_command(
    input_path: Path = typer.Option(..., "-i", "--input", help="Image file, folder of images, DICOM series folder, "
                                                               "or folder of DICOM series folders."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder (not the input folder)."),
    dataset: Optional[str] = typer.Option(None, "-d", "--dataset", help="Dataset whose trained models to use."),
    configurations: Optional[List[str]] = typer.Option(None, "-c", "--configuration",
                                                       help="Configuration(s) (-c 2d 3d_fullres, or a,b); "
                                                            "default: the stored best choice "
                                                            "(find_best_configuration), else the only "
                                                            "configuration trained."),
    folds: Optional[List[str]] = typer.Option(None, "-f", "--folds",
                                              help="Folds to average (-f 0 1 2, or 0,1,2; 'all' is the fold trained "
                                                   "on every case); default: every finished numbered fold, "
                                                   "else fold all."),
    planner: Optional[str] = typer.Option(None, "--planner", help=TRAINED_PLANNER_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help="Model bundle (.zip) or extracted model folder."),
    disable_tta: bool = typer.Option(False, "--disable-tta", help="No test-time mirroring (about 8x faster in 3D)."),
    step_size: Optional[float] = typer.Option(
        None, "--step-size",
        help="Window stride as a fraction of the patch (default: the mode's: 0.5 full, 0.75 fast)."),
    mode: str = typer.Option("auto", "--mode", help="full (every mirroring, step 0.5, whole volume: the reference), "
                                                    "fast (body crop, empty windows skipped, background outside the "
                                                    "body, no mirroring, step 0.75) or auto "
                                                    "(full on GPUs; on CPUs fast for 2D and 3D CT models of whole body "
                                                    "sections, else full; the log says which and why)."),
    mirror_axes: Optional[str] = typer.Option(None, "--mirror-axes",
                                              help="Axes to mirror at test time, e.g. zyx, x or none "
                                                   "(default: the mode's)."),
    crop_to_body: Optional[bool] = typer.Option(None, "--crop-to-body/--no-crop-to-body",
                                                help="Tile only the body's bounding box (CT; default: the mode's)."),
    skip_empty_windows: Optional[bool] = typer.Option(
        None, "--skip-empty-windows/--no-skip-empty-windows",
        help="Skip windows without a body voxel (CT; default: the mode's)."),
    restrict_to_body: Optional[bool] = typer.Option(
        None, "--restrict-to-body/--no-restrict-to-body",
        help="Background outside the body (CT; slices whose body touches the image border excepted; "
             "default: the mode's)."),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="Also write <case>.npz."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps."),
    output_format: Optional[str] = typer.Option(None, "--format",
                                                help="nii.gz, nrrd, mha or png; default: input's. dicom-seg or "
                                                     "rtstruct (DICOM series input): also OUTPUT/dicom/<case>_seg.dcm "
                                                     "or _rtstruct.dcm beside the NIfTI masks."),
    precision: str = typer.Option("auto", "--precision",
                                  help="auto (bfloat16 autocast where the hardware runs it natively), "
                                       "float32, bfloat16."),
    batch_windows: Optional[int] = typer.Option(
        None, "--window-batch", min=1,
        help="Windows per network call (default: 2, as measured, one window running its mirrorings two at a "
             "time; 1 for large windows)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo cases that already have a mask."),
    overlays: bool = typer.Option(False, "--overlays", help="Also write a QC picture per case to OUTPUT/overlays/."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
    report: bool = typer.Option(False, "--report", help="Also measure every lesion into OUTPUT/report/ "
                                                        "(as `autolung report`)."),
    sr: bool = typer.Option(False, "--sr", help="With --report: also a DICOM SEG + TID 1500 SR per case "
                                                "(DICOM series input)."),
    seg_type: str = typer.Option("binary", "--seg-type", help="DICOM SEG type: binary or fractional."),
    anonymize: bool = typer.Option(False, "--anonymize", help="Blank patient and visit attributes in DICOM output."),
    num_parts: int = typer.Option(1, "--num-parts", help="Split the cases into N parts (processes or machines "
                                                          "sharing one output folder each take one)."),
    part_id: int = typer.Option(0, "--part-id", help="Which part this process predicts: 0 to N-1."),
    preprocessing_workers: int = typer.Option(
        0, "-npp", "--preprocessing-workers",
        help="Threads reading and preprocessing the next cases while the network runs (0: in turn)."),
    export_workers: int = typer.Option(
        0, "-nps", "--export-workers",
        help="Threads restoring and writing finished cases while the network runs (0: in turn)."),
    checkpoint: str = typer.Option("final", "--checkpoint",
                                   help="Which checkpoint of each fold: final, best (best EMA pseudo-Dice), latest, or "
                                        "weight_ema (the weight average of train --weight-ema)."),
    root: Optional[Path] = root_option(),
) -> None:
    resolved_root = data_root(root) if dataset or model is None else None
    with RichProgress(_console) as bars:
        result = api.predict(
            input_path, output, resolved_root, dataset=dataset, configurations=split_values(configurations) or None,
            folds=[api.parse_prediction_fold(v) for v in split_values(folds)] or None, model=model,
            planner=planner, checkpoint=checkpoint, progress=None if no_progress else bars,
            dicom_format=output_format if output_format in DICOM_FORMATS else None, lesion_report=report, sr=sr,
            seg_type=seg_type, anonymize=anonymize, num_threads=threads, step_size=step_size,
            mirror=False if disable_tta else None, window_batch_size=batch_windows, device=device,
            precision=precision, save_probabilities=save_probabilities, output_ending=_ending(output_format),
            overwrite=overwrite, overlays=overlays, mode=mode, mirror_axes=_mirror_axes(mirror_axes),
            crop_to_body=crop_to_body, skip_empty_windows=skip_empty_windows, restrict_to_body=restrict_to_body,
            num_parts=num_parts, part_id=part_id,
            preprocessing_workers=preprocessing_workers, export_workers=export_workers)
    _console.print(f"{len(result.masks)} masks in {output} (peak RSS {result.peak_rss_mb:.0f} MB)")
    if output_format in DICOM_FORMATS:
        _console.print(f"{len(result.dicom_files)} {output_format} file(s) in {output / 'dicom'}")
    if result.report is not None:
        from autolung_cli.commands.report import lesion_table

        _console.print(lesion_table(result.report))
        _console.print(f"lesion report in {result.report_folder}")


@app.command("ensemble", help="Average saved probabilities (--save-probabilities) of several runs into masks.")
def ensemble_command(
    inputs: List[Path] = typer.Option(..., "-i", "--input", help="Folders of <case>.npz: -i DIR1 DIR2 ... "
                                                                 "(or -i DIR1 -i DIR2)."),
    more_inputs: Optional[List[Path]] = typer.Argument(None, help="Further input folders (after -i DIR1).",
                                                       show_default=False),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder."),
    output_format: Optional[str] = typer.Option(None, "--format", help="nii.gz, nrrd, mha or png."),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="Also write averaged <case>.npz."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo cases that already have a mask."),
    postprocessing: Optional[Path] = typer.Option(None, "--pp", "--postprocessing",
                                                  help="Apply this postprocessing.json (or inference_choice.json)."),
) -> None:
    folders = [*inputs, *(more_inputs or [])]
    written = api.ensemble(folders, output, postprocessing_file=postprocessing, output_ending=_ending(output_format),
                           save_probabilities=save_probabilities, overwrite=overwrite)
    _console.print(f"{len(written)} masks in {output}")


@app.command("find_best_configuration", cls=multi_value_command("-c", "--configuration"),
             help="Choose configuration(s) and postprocessing from cross-validation; writes inference_choice.json.")
def find_best_configuration_command(
    dataset: str = typer.Option(..., "-d", "--dataset", help="Dataset name or folder."),
    configurations: Optional[List[str]] = typer.Option(None, "-c", "--configuration",
                                                       help="Limit to these (repeat -c, or a,b)."),
    no_ensembles: bool = typer.Option(False, "--no-ensembles", help="Do not consider pairwise ensembles."),
    allow_partial: bool = typer.Option(False, "--allow-partial",
                                       help="Accept a cross-validation missing folds or cases (reported as partial)."),
    root: Optional[Path] = root_option(),
) -> None:
    resolved = data_root(root)
    choice = api.find_best_configuration(dataset_name(dataset, resolved), resolved, split_values(configurations) or None,
                                     not no_ensembles, allow_partial)
    if choice.get("partial"):
        _console.print(f"[yellow]warning: chosen from a PARTIAL cross-validation ({choice['num_cases']} cases): "
                       f"{choice['partial']}[/yellow]")
    for name, score in sorted(choice["candidates"].items(), key=lambda item: -item[1]):
        _console.print(f"{name:50s} mean foreground Dice {score:.4f}")
    chosen = "+".join(entry["folder"] for entry in choice["configurations"])
    _console.print(f"chosen: {chosen}; postprocessing rules: {choice['postprocessing']['rules']}")


app.command("find-best-configuration", hidden=True)(find_best_configuration_command)
