"""DICOM Segmentation objects of label maps, built with highdicom.

One segment per class (SNOMED CT coded), frames referencing the source CT images, the source
series and its frame of reference; binary or fractional. highdicom is used rather than
hand-built datasets because it writes the multi-frame functional groups, the per-frame source
references and the dimension index from the source images and validates the modules, which is
where hand-made SEGs usually go wrong.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autolung import __version__
from autolung.errors import InvalidInputError
from autolung.reporting.dicom_common import (
    MANUFACTURER,
    algorithm_identification,
    code,
    coded_class,
    deidentify,
    read_source_series,
)
from autolung.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

SEG_SERIES_NUMBER = 901
SEG_TYPES = ("binary", "fractional")


@dataclass(frozen=True)
class WrittenSegmentation:
    """A SEG written to disk and what an SR needs to reference it.

    Attributes:
        path: the file.
        sop_instance_uid, series_instance_uid: its UIDs.
        segment_numbers: label value -> segment number.
        segment_labels: label value -> segment label.
    """

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    segment_numbers: dict[int, int] = field(default_factory=dict)
    segment_labels: dict[int, str] = field(default_factory=dict)


def check_mask_matches_series(mask: np.ndarray, source: list, folder: Path) -> None:
    """Refuse a mask whose (slices, rows, columns) are not the series'."""
    expected = (len(source), int(source[0].Rows), int(source[0].Columns))
    if tuple(mask.shape) != expected:
        raise InvalidInputError(f"mask shape {tuple(mask.shape)} does not match the DICOM series "
                                f"(slices, rows, columns) {expected}", path=folder)


def segment_labels(mask: np.ndarray, label_names: Mapping[int, str]) -> list[int]:
    """Label values that get a segment: the named ones and those present, never background."""
    present = {int(v) for v in np.unique(mask) if v != 0}
    return sorted(present | {int(v) for v in label_names if int(v) != 0})


def build_segmentation(source: list, mask: np.ndarray, label_names: Mapping[int, str], seg_type: str = "binary",
                       fractions: Mapping[int, np.ndarray] | None = None):
    """The highdicom Segmentation of ``mask`` over ``source`` (datasets in the mask's slice order).

    Args:
        source: the source images, ``source[z]`` being the image of ``mask[z]``.
        mask: ``(Z, Y, X)`` integer label map.
        label_names: names of labels (those without a name are called ``label N``).
        seg_type: "binary" or "fractional" (stored in 1/255 steps, PROBABILITY type).
        fractions: for a fractional SEG, label -> ``(Z, Y, X)`` probabilities in [0, 1]; labels
            without one store the mask's 0/1.

    Returns:
        ``(segmentation, {label: segment number})``.
    """
    import highdicom as hd

    if seg_type not in SEG_TYPES:
        raise InvalidInputError(f"seg_type must be one of {', '.join(SEG_TYPES)}, got {seg_type!r}")
    values = segment_labels(mask, label_names)
    if not values:
        raise InvalidInputError("the mask is empty and no label names were given: a SEG needs at least one segment")
    numbers = {value: number for number, value in enumerate(values, start=1)}
    descriptions = []
    for value, number in numbers.items():
        name = label_names.get(value, f"label {value}")
        coded = coded_class(name)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name, segmented_property_category=code(coded.category),
            segmented_property_type=code(coded.type), algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm_identification(), tracking_uid=hd.UID(),
            tracking_id=f"{name} (label {value})"))
    lookup = np.zeros(int(mask.max(initial=0)) + 1, dtype=np.uint8)
    for value, number in numbers.items():
        if value < lookup.size:
            lookup[value] = number
    relabelled = lookup[mask]
    if seg_type == "binary":
        pixels = relabelled
        kind = hd.seg.SegmentationTypeValues.BINARY
    else:
        fractions = fractions or {}
        for value, fraction in fractions.items():
            if fraction.shape != mask.shape:
                raise InvalidInputError(f"probabilities of label {value} have shape {fraction.shape}, the mask "
                                        f"{mask.shape}")
        pixels = np.stack([np.clip(fractions[value], 0.0, 1.0).astype(np.float32) if value in fractions
                           else (relabelled == number).astype(np.float32) for value, number in numbers.items()],
                          axis=-1)
        kind = hd.seg.SegmentationTypeValues.FRACTIONAL
    segmentation = hd.seg.Segmentation(
        source_images=source, pixel_array=pixels, segmentation_type=kind, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=SEG_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name="autolung", software_versions=__version__,
        device_serial_number="0", series_description="autolung segmentation",
        content_label="AUTOLUNG", content_description="autolung segmentation",
        omit_empty_frames=bool(np.any(pixels)))
    return segmentation, numbers


def write_dicom_seg(source_folder: str | Path, mask: np.ndarray, output: str | Path,
                    label_names: Mapping[int, str] | None = None, seg_type: str = "binary",
                    anonymize: bool = False, fractions: Mapping[int, np.ndarray] | None = None) -> WrittenSegmentation:
    """Write ``mask`` (on the grid of the series in ``source_folder``) as a DICOM SEG file.

    Args:
        source_folder: the DICOM series the mask was made from.
        mask: ``(Z, Y, X)`` label map in autolung's array order for that series.
        output: the ``.dcm`` file to write (atomically).
        label_names: names of labels; they choose the codes (lung, tumour/neoplasm, nodule).
        seg_type: "binary" or "fractional".
        anonymize: blank identifying patient and visit attributes (UIDs kept).
        fractions: for a fractional SEG, label -> probabilities on the mask's grid (else 0/1).

    Returns:
        What was written.

    Raises:
        InvalidInputError: the folder is not a DICOM series, or the mask is not on its grid.
    """
    source_folder, output = Path(source_folder), Path(output)
    source = read_source_series(source_folder)
    check_mask_matches_series(mask, source, source_folder)
    names = dict(label_names or {})
    segmentation, numbers = build_segmentation(source, mask, names, seg_type, fractions)
    if anonymize:
        deidentify(segmentation)
    with atomic_path(output) as tmp:
        segmentation.save_as(tmp)
    logger.info("%s: DICOM SEG with %d segment(s)", output, len(numbers))
    return WrittenSegmentation(output, str(segmentation.SOPInstanceUID), str(segmentation.SeriesInstanceUID),
                               numbers, {v: names.get(v, f"label {v}") for v in numbers})
