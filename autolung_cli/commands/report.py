"""``autolung report``: per-lesion measurements, tables, pictures and (optionally) a DICOM SR."""
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


def parse_label_names(values: Optional[List[str]]) -> Optional[dict[int, str]]:
    """``--label-name 2=tumour`` (repeatable) into ``{2: "tumour"}``."""
    if not values:
        return None
    names = {}
    for value in values:
        number, _, name = value.partition("=")
        if not number.strip().isdigit() or not name.strip():
            raise InvalidInputError(f"label name {value!r} is not of the form VALUE=NAME (e.g. 2=tumour)")
        names[int(number)] = name.strip()
    return names


def lesion_table(payload: dict) -> Table:
    """One row per case: lesion count, burden, largest lesion."""
    table = Table(title="lesions")
    for column in ("case", "lesions", "total mL", "largest (long x short mm, mL)"):
        table.add_column(column, justify="right" if column != "case" else "left")
    for case in payload["cases"]:
        largest = next((l for l in case["lesions"] if l["lesion"] == case["largest_lesion"]), None)
        described = (f"{largest['label_name']} {largest['long_axis_mm']:.1f} x {largest['short_axis_mm']:.1f}, "
                     f"{largest['volume_ml']:.2f}" if largest else "-")
        table.add_row(case["case"], str(case["lesion_count"]), f"{case['total_volume_ml']:.2f}", described)
    return table


@app.command("report", help="Measure every lesion (volume, RECIST axes, 3D diameter, HU, side) of masks; writes "
                            "lesions.csv, report.json, a picture per lesion and a summary page per case.")
def report_command(
    images: Path = typer.Option(..., "-i", "--images", help="Image file, folder of images, DICOM series folder, "
                                                             "or folder of DICOM series folders."),
    masks: Path = typer.Option(..., "-m", "--masks", help="Mask file or folder of masks named by case id."),
    output: Path = typer.Option(..., "-o", "--output", help="Report folder."),
    connectivity: int = typer.Option(3, "--connectivity", min=1, max=3,
                                     help="Voxels joined into one lesion: 1 faces (6 neighbours), 2 edges (18), "
                                          "3 corners (26)."),
    min_volume: float = typer.Option(0.0, "--min-volume-mm3", min=0.0, help="Smaller lesions are not reported."),
    labels: Optional[List[int]] = typer.Option(None, "-l", "--label",
                                               help="Labels to measure (repeat); default: all but lung labels."),
    lung_labels: Optional[List[int]] = typer.Option(None, "--lung-label",
                                                    help="Labels marking lung, used for the side (repeat); default: "
                                                         "labels named like lung in a dataset.json beside the masks."),
    label_names: Optional[List[str]] = typer.Option(None, "--label-name", help="VALUE=NAME (repeat), e.g. 2=tumour."),
    no_pictures: bool = typer.Option(False, "--no-pictures", help="Skip the per-lesion pictures."),
    sr: bool = typer.Option(False, "--sr", help="Also write DICOM SEG + TID 1500 measurement SR per case "
                                                "(images must be DICOM series) to OUTPUT/dicom/."),
    anonymize: bool = typer.Option(False, "--anonymize", help="Blank patient and visit attributes in DICOM output "
                                                              "(UIDs kept)."),
) -> None:
    payload = api.report(images, masks, output, connectivity=connectivity, min_volume_mm3=min_volume,
                         labels=labels or None, lung_labels=lung_labels or None,
                         label_names=parse_label_names(label_names), pictures=not no_pictures, sr=sr,
                         anonymize=anonymize)
    _console.print(lesion_table(payload))
    _console.print(f"report written to {output}")
