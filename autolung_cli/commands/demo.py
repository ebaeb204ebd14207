"""``autolung demo`` (the README's main job) and ``autolung overlay`` (QC pictures)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from autolung import api
from autolung_cli.app import app
from autolung_cli.common import data_root, root_option
from autolung_cli.progress import progress_reporter


@app.command("demo")
def demo(
    root: Optional[Path] = root_option(),
    time_budget: Optional[str] = typer.Option(
        None, "--time-budget",
        help="Training wall-clock budget (e.g. 90s, 5m, 1h); default 5m, 10m on CPUs without native bfloat16."),
    num_cases: int = typer.Option(20, "--num-cases", help="Synthetic training cases."),
    num_unseen: int = typer.Option(4, "--num-unseen", help="Synthetic cases held out for prediction."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic data."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, mps or auto."),
    disable_tta: bool = typer.Option(False, "--disable-tta", help="Predict without test-time mirroring."),
    num_processes: int = typer.Option(2, "-np", "--num-processes", help="Preprocessing processes."),
    planner: str = typer.Option("cpu", "--planner", help="cpu (slim U-Net for CPUs), auto (sized to the device and budget) or default (GPU-sized)."),
) -> None:
    """Write demo data, plan, preprocess, train 3d_fullres fold 0, predict unseen cases, evaluate."""
    budget_s = api.parse_duration(time_budget) if time_budget else None
    result = api.demo(data_root(root), num_cases=num_cases, num_unseen=num_unseen, seed=seed, time_budget_s=budget_s,
                      device=device, mirror=not disable_tta, num_processes=num_processes,
                      progress=progress_reporter(True), planner=planner)
    console = Console()
    console.print(demo_table(result.summary, _label_names(result.dataset_folder)))
    console.print(f"mean foreground Dice on {result.summary['num_cases']} unseen cases: "
                  f"{result.summary['mean_foreground_dice']:.3f}")
    console.print(f"model:       {result.fold_folder}")
    console.print(f"masks:       {result.predictions}")
    console.print(f"overlays:    {result.overlays[0].parent if result.overlays else 'none'}")
    console.print(f"plots:       {result.fold_folder / 'progress.png'}")
    console.print(f"evaluation:  {result.summary_json}")


def _label_names(dataset_folder: Path) -> dict[str, str]:
    import json

    labels = json.loads((dataset_folder / "dataset.json").read_text(encoding="utf-8")).get("labels", {})
    return {str(value): str(name) for value, name in labels.items()}


def _mean_std(stats: dict, digits: int = 3) -> str:
    mean, std = stats.get("mean"), stats.get("std")
    if mean is None or mean != mean:
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def demo_table(summary: dict, names: dict[str, str]):
    """A narrow table (fits 80 columns): per class Dice, HD95, NSD and lesion detection."""
    from rich.table import Table

    table = Table(title=f"{summary['num_cases']} unseen cases (mean ± std; NSD at {summary['tolerance_mm']:g} mm)")
    for column in ("class", "Dice", "HD95 mm", "NSD", "lesion sens.", "FP/case"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for key, stats in summary["per_class"].items():
        lesions = summary.get("lesions", {}).get(key, {})
        sensitivity, false_positives = lesions.get("lesion_sensitivity"), lesions.get("fp_per_case")
        table.add_row(names.get(key, key), _mean_std(stats["dice"]), _mean_std(stats["hd95"], 1),
                      _mean_std(stats["nsd"]),
                      "n/a" if sensitivity is None else f"{sensitivity:.3f}",
                      "n/a" if false_positives is None else f"{false_positives:.2f}")
    return table


@app.command("overlay")
def overlay(
    image: Path = typer.Option(..., "-i", "--image", help="Image file or DICOM folder."),
    mask: Path = typer.Option(..., "-m", "--mask", help="Predicted mask."),
    output: Path = typer.Option(..., "-o", "--output", help="PNG to write."),
    reference: Optional[Path] = typer.Option(None, "-r", "--reference", help="Reference mask, drawn in green."),
    window: str = typer.Option("lung", "--window", help="CT window: lung or soft_tissue."),
    num_slices: int = typer.Option(6, "--num-slices", help="Slices in the montage."),
) -> None:
    """Draw a montage of slices through the segmented structures (prediction red, reference green)."""
    api.overlay(image, mask, output, reference, window=window, num_slices=num_slices)
    typer.echo(f"wrote {output}")
