"""``autolung report``: measure every lesion of a folder of masks and write the report files.

Output folder layout:

* ``lesions.csv``: one row per lesion (:data:`CSV_COLUMNS`);
* ``report.json``: the versioned record (:data:`REPORT_FORMAT`, :data:`REPORT_VERSION`) with
  provenance, options, per-case totals and every lesion;
* ``pictures/<case>_lesion<NN>.png``: the RECIST slice of each lesion with outline and axes;
* ``<case>.html``: a one-page summary per case (totals, table, pictures);
* with ``sr``: ``dicom/<case>_seg.dcm`` (the mask as DICOM SEG) and ``dicom/<case>_sr.dcm`` (the
  TID 1500 measurement report referencing it); the images must then be DICOM series.

Every file is written atomically; all image/mask grids are checked before anything is written,
so a mismatch leaves the output folder untouched.
"""
from __future__ import annotations

import csv
import datetime as dt
import html
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from autolung.errors import InvalidInputError
from autolung.io.compare import geometry_differences
from autolung.io.formats import image_ending, strip_ending
from autolung.provenance import provenance, read_predictions_record
from autolung.reporting.measure import CaseMeasurements, Lesion, MeasurementOptions, measure_case
from autolung.utils.atomic import write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

REPORT_FORMAT = "autolung-lesion-report"
REPORT_VERSION = 1
REPORT_JSON = "report.json"
LESIONS_CSV = "lesions.csv"
PICTURES = "pictures"
DICOM_FOLDER = "dicom"
CSV_COLUMNS = (
    "case", "lesion", "label", "label_name", "volume_mm3", "volume_ml", "long_axis_mm", "short_axis_mm",
    "recist_slice", "max_diameter_3d_mm", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm", "centroid_z_index",
    "centroid_y_index", "centroid_x_index", "bbox_z_min", "bbox_y_min", "bbox_x_min", "bbox_z_max", "bbox_y_max",
    "bbox_x_max", "hu_mean", "hu_std", "hu_min", "hu_max", "hu_percentiles", "side", "side_source", "picture",
)


@dataclass(frozen=True)
class ReportCase:
    """One image and its mask."""

    case: str
    image: Path
    mask: Path


def label_names_from_dataset_json(payload: Mapping[str, Any]) -> dict[int, str]:
    """Label value -> name from a dataset.json (Decathlon ``{"1": "lung"}`` or nnU-Net v2 ``{"lung": 1}``).

    Regions (lists of values) are skipped.
    """
    names: dict[int, str] = {}
    for key, value in dict(payload.get("labels", {})).items():
        if isinstance(value, int) and not isinstance(value, bool):
            names[value] = str(key)
        elif isinstance(value, str) and str(key).isdigit():
            names[int(key)] = value
    return names


def lung_labels_from_names(names: Mapping[int, str]) -> tuple[int, ...]:
    """Labels whose name says lung (e.g. ``lung``, ``left lung``), never background."""
    return tuple(sorted(v for v, name in names.items() if v != 0 and "lung" in name.lower()))


def default_label_names(masks: str | Path) -> dict[int, str]:
    """Label names from a dataset.json in the mask folder or the folder above it; empty when none."""
    import json

    masks = Path(masks)
    folder = masks if masks.is_dir() else masks.parent
    for candidate in (folder / "dataset.json", folder.parent / "dataset.json"):
        if candidate.is_file():
            try:
                return label_names_from_dataset_json(json.loads(candidate.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                logger.warning("%s: not used for label names (%s)", candidate, exc)
    return {}


def _mask_files(masks: Path) -> dict[str, Path]:
    if masks.is_file():
        return {strip_ending(masks): masks}
    if not masks.is_dir():
        raise InvalidInputError("mask folder not found", path=masks)
    return {strip_ending(p): p for p in sorted(masks.iterdir())
            if p.is_file() and not p.name.startswith(".") and image_ending(p) is not None}


def pair_cases(images: str | Path, masks: str | Path, cases: Sequence[str] | None = None) -> list[ReportCase]:
    """Pair images (files, folders of files, DICOM series folders) with masks by case id.

    A single image with a single mask file is one case, whatever their names. ``cases`` limits
    the pairing to those case ids (e.g. the cases just predicted into a folder holding others).

    Raises:
        InvalidInputError: no masks, or a mask without an image.
    """
    from autolung.inference.inputs import discover_cases

    images, masks = Path(images), Path(masks)
    mask_files = _mask_files(masks)
    if cases is not None:
        wanted = set(cases)
        mask_files = {case: path for case, path in mask_files.items() if case in wanted}
    if not mask_files:
        raise InvalidInputError("no mask files found", path=masks)
    inputs = discover_cases(images)
    if len(inputs) == 1 and len(mask_files) == 1:
        only_mask = next(iter(mask_files.values()))
        return [ReportCase(inputs[0].case_id, inputs[0].sources[0], only_mask)]
    by_id = {case.case_id: case.sources[0] for case in inputs}
    missing = sorted(set(mask_files) - set(by_id))
    if missing:
        raise InvalidInputError(f"no image for mask(s) {', '.join(missing[:5])}", path=images)
    return [ReportCase(case, by_id[case], mask) for case, mask in sorted(mask_files.items())]


def check_grids(cases: Sequence[ReportCase]) -> None:
    """Refuse, naming the file, a 2D or sheared image, or a mask whose grid differs from its image's."""
    from autolung.io.images import read_geometry
    from autolung.reporting.geometry import direction_matrix

    for case in cases:
        image_geometry = read_geometry(case.image)
        try:
            direction_matrix(image_geometry)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.problem, path=case.image) from exc
        problems = geometry_differences(image_geometry, read_geometry(case.mask), "mask", "image")
        if problems:
            raise InvalidInputError(f"mask does not match the grid of its image {case.image}: {'; '.join(problems)}",
                                    path=case.mask)


def _csv_row(case: str, lesion: Lesion, picture: str) -> dict[str, Any]:
    hu = lesion.hu
    percentiles = {k: v for k, v in hu.items() if k.startswith("p")}
    row = {"case": case, "lesion": lesion.lesion, "label": lesion.label, "label_name": lesion.label_name,
           "volume_mm3": round(lesion.volume_mm3, 3), "volume_ml": round(lesion.volume_ml, 6),
           "long_axis_mm": round(lesion.long_axis_mm, 3), "short_axis_mm": round(lesion.short_axis_mm, 3),
           "recist_slice": lesion.recist_slice, "max_diameter_3d_mm": round(lesion.max_diameter_3d_mm, 3),
           "side": lesion.side, "side_source": lesion.side_source, "picture": picture,
           "hu_percentiles": ";".join(f"{k}={v:.1f}" for k, v in percentiles.items())}
    for axis, value in zip("xyz", lesion.centroid_patient_mm):
        row[f"centroid_{axis}_mm"] = round(value, 3)
    for axis, value in zip("zyx", lesion.centroid_zyx):
        row[f"centroid_{axis}_index"] = round(value, 3)
    for axis, low, high in zip("zyx", lesion.bbox_min_zyx, lesion.bbox_max_zyx):
        row[f"bbox_{axis}_min"], row[f"bbox_{axis}_max"] = low, high
    for key in ("mean", "std", "min", "max"):
        row[f"hu_{key}"] = round(hu[key], 3) if key in hu else ""
    return row


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _summary_html(record: dict[str, Any]) -> str:
    """A one-page summary: totals, a table of lesions and their pictures."""
    esc = html.escape
    lesions = record["lesions"]
    largest = next((l for l in lesions if l["lesion"] == record["largest_lesion"]), None)
    lines = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>autolung lesion report: {esc(record['case'])}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}th{background:#eee}"
        "figure{display:inline-block;margin:4px}img{width:300px}</style></head><body>",
        f"<h1>Lesion report: {esc(record['case'])}</h1>",
        f"<p>Image <code>{esc(record['image'])}</code>; mask <code>{esc(record['mask'])}</code>.</p>",
        f"<p><b>{record['lesion_count']}</b> lesion(s), total burden <b>{record['total_volume_ml']:.2f} mL</b>",
    ]
    if largest is not None:
        lines.append(f"; largest: lesion {largest['lesion']} ({esc(largest['label_name'])}, "
                     f"{largest['volume_ml']:.2f} mL, {largest['long_axis_mm']:.1f} x "
                     f"{largest['short_axis_mm']:.1f} mm)")
    lines.append(".</p>")
    if lesions:
        lines.append("<table><tr><th>lesion</th><th>class</th><th>volume mL</th><th>long axis mm</th>"
                     "<th>short axis mm</th><th>3D max mm</th><th>slice</th><th>side</th><th>HU mean</th></tr>")
        for l in lesions:
            hu = f"{l['hu']['mean']:.0f}" if l["hu"] else ""
            lines.append(f"<tr><td>{l['lesion']}</td><td>{esc(l['label_name'])}</td><td>{l['volume_ml']:.3f}</td>"
                         f"<td>{l['long_axis_mm']:.1f}</td><td>{l['short_axis_mm']:.1f}</td>"
                         f"<td>{l['max_diameter_3d_mm']:.1f}</td><td>{l['recist_slice']}</td>"
                         f"<td>{esc(l['side'])}</td><td>{hu}</td></tr>")
        lines.append("</table><p>Red: RECIST long axis; blue: short axis; yellow: outline.</p>")
        for l in lesions:
            lines.append(f"<figure><img src='{esc(l['picture'])}' alt='lesion {l['lesion']}'>"
                         f"<figcaption>lesion {l['lesion']}</figcaption></figure>")
    lines.append(f"<p><small>autolung {esc(record.get('autolung_version', ''))}</small></p></body></html>\n")
    return "\n".join(lines)


def _case_record(case: ReportCase, measured: CaseMeasurements, geometry_json: dict[str, Any],
                 pictures: list[str]) -> dict[str, Any]:
    largest = measured.largest
    lesions = [{**lesion.to_json(), "picture": picture} for lesion, picture in zip(measured.lesions, pictures)]
    return {"case": case.case, "image": str(case.image), "mask": str(case.mask), "geometry": geometry_json,
            "lesion_count": len(measured.lesions), "total_volume_ml": measured.total_volume_ml,
            "largest_lesion": largest.lesion if largest else None,
            "dropped_components": measured.dropped_components, "lesions": lesions}


def check_dicom_images(cases: Sequence[ReportCase]) -> None:
    """Refuse, naming the image, any case whose image is not a DICOM series (DICOM output needs one)."""
    from autolung.io.dicom import is_dicom_folder
    from autolung.reporting.dicom_common import require_highdicom

    require_highdicom()
    for case in cases:
        if not is_dicom_folder(case.image):
            raise InvalidInputError("a DICOM SR/SEG needs a DICOM series as image; this is not a DICOM series folder",
                                    path=case.image)


def _write_dicom(case: ReportCase, labels: np.ndarray, measured: CaseMeasurements, output: Path,
                 options: MeasurementOptions, anonymize: bool) -> dict[str, str]:
    from autolung.reporting.dicom_seg import write_dicom_seg
    from autolung.reporting.dicom_sr import write_dicom_sr

    names = dict(options.label_names)
    seg = write_dicom_seg(case.image, labels, output / DICOM_FOLDER / f"{case.case}_seg.dcm", names,
                          anonymize=anonymize)
    sr = write_dicom_sr(case.image, seg, measured.lesions, output / DICOM_FOLDER / f"{case.case}_sr.dcm", anonymize)
    return {"seg": f"{DICOM_FOLDER}/{seg.path.name}", "sr": f"{DICOM_FOLDER}/{sr.name}",
            "seg_sop_instance_uid": seg.sop_instance_uid,
            "segment_numbers": {str(k): v for k, v in seg.segment_numbers.items()}}


def _measure_one(case: ReportCase, output: Path, options: MeasurementOptions, digest: str | None,
                 draw: bool, sr: bool = False, anonymize: bool = False) -> dict[str, Any]:
    from autolung.io.images import read_image, read_label
    from autolung.reporting.pictures import draw_lesion

    labels, _ = read_label(case.mask)
    image, image_geometry = read_image(case.image)
    hu = np.asarray(image[0], dtype=np.float32)
    measured = measure_case(case.case, labels, image_geometry, hu, options)
    pictures = []
    for lesion in measured.lesions:
        name = f"{PICTURES}/{case.case}_lesion{lesion.lesion:02d}.png"
        pictures.append(name)
        if draw:
            draw_lesion(hu, measured.lesion_mask(lesion.lesion, labels.shape), lesion, image_geometry.spacing,
                        output / name, f"{case.case} lesion {lesion.lesion}: {lesion.long_axis_mm:.1f} x "
                        f"{lesion.short_axis_mm:.1f} mm", digest)
    geometry_json = {k: v for k, v in image_geometry.to_json().items() if k != "extra"}
    record = _case_record(case, measured, geometry_json, pictures)
    if sr:
        record["dicom"] = _write_dicom(case, labels, measured, output, options, anonymize)
    return record


def write_report(images: str | Path, masks: str | Path, output: str | Path,
                 options: MeasurementOptions | None = None, pictures: bool = True,
                 plans_digest: str | None = None, sr: bool = False, anonymize: bool = False,
                 cases: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure every lesion of every mask and write the report files into ``output``.

    Args:
        images: an image file, a folder of images, a DICOM series folder or a folder of them.
        masks: a mask file or a folder of masks named by case id.
        output: the report folder (created; may not be the image or mask folder).
        options: measurement options; label names and lung labels default to a dataset.json
            beside the masks, or to names containing "lung".
        pictures: also draw a picture per lesion.
        plans_digest: provenance; default: the masks' ``autolung_predictions.json``.
        sr: also write a DICOM SEG and a TID 1500 SR per case (images must be DICOM series).
        anonymize: blank identifying patient and visit attributes in the DICOM objects.
        cases: only these case ids (default: every mask).

    Returns:
        The ``report.json`` payload.

    Raises:
        InvalidInputError: unpaired files or a mask on another grid than its image (nothing is
            written then).
    """
    images, masks, output = Path(images), Path(masks), Path(output)
    for source in (images, masks):
        if source.is_dir() and output.resolve() == source.resolve():
            raise InvalidInputError("the report folder is an input folder; choose another output", path=output)
    options = options or MeasurementOptions()
    pairs = pair_cases(images, masks, cases)
    check_grids(pairs)
    if sr:
        check_dicom_images(pairs)
    if plans_digest is None:
        record = read_predictions_record(masks if masks.is_dir() else masks.parent)
        plans_digest = record.get("plans_digest") if record else None
    digest_text = "+".join(plans_digest) if isinstance(plans_digest, list) else plans_digest
    case_records = []
    for case in pairs:
        record = _measure_one(case, output, options, digest_text, pictures, sr, anonymize)
        logger.info("%s: %d lesion(s), %.2f mL", case.case, record["lesion_count"], record["total_volume_ml"])
        case_records.append(record)
    payload = {"format": REPORT_FORMAT, "version": REPORT_VERSION, **provenance(plans_digest),
               "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "options": {**asdict(replace(options, label_names={})),
                           "label_names": {str(k): v for k, v in options.label_names.items()}},
               "cases": case_records}
    rows = [_csv_row(r["case"], Lesion(**{k: v for k, v in l.items() if k != "picture"}), l["picture"])
            for r in case_records for l in r["lesions"]]
    write_text_atomic(output / LESIONS_CSV, _csv_text(rows))
    for record in case_records:
        write_text_atomic(output / f"{record['case']}.html",
                          _summary_html({**record, "autolung_version": payload["autolung_version"]}))
    write_json_atomic(output / REPORT_JSON, payload)
    return payload
