"""Predicted masks of DICOM inputs written back as DICOM (``predict --format dicom-seg|rtstruct``).

The masks themselves stay in the output folder as NIfTI (what ``evaluate`` and ``report`` read,
and what tells a resumed run that a case is done); the DICOM objects go to ``<output>/dicom/``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from autolung.errors import InvalidInputError

logger = logging.getLogger(__name__)

DICOM_FORMATS = ("dicom-seg", "rtstruct")
DICOM_OUTPUT_FOLDER = "dicom"
_SUFFIX = {"dicom-seg": "_seg.dcm", "rtstruct": "_rtstruct.dcm"}


def check_dicom_input(input_path: str | Path, output_format: str) -> None:
    """Refuse, before any prediction, an input that is not made of DICOM series.

    Raises:
        InvalidInputError: unknown format, or an input case that is not a DICOM series folder.
    """
    from autolung.inference.inputs import discover_cases
    from autolung.reporting.dicom_common import require_highdicom

    if output_format not in DICOM_FORMATS:
        raise InvalidInputError(f"output_format must be one of {', '.join(DICOM_FORMATS)}, got {output_format!r}")
    require_highdicom()
    for case in discover_cases(Path(input_path)):
        if not case.is_dicom:
            raise InvalidInputError(f"output_format {output_format!r} needs DICOM series as input; "
                                    "this is not a DICOM series folder", path=case.sources[0])


def write_dicom_masks(input_path: str | Path, mask_folder: str | Path, output_format: str,
                      label_names: Mapping[int, str] | None = None, seg_type: str = "binary",
                      anonymize: bool = False) -> list[Path]:
    """Write each DICOM case's mask in ``mask_folder`` as a SEG or RTSTRUCT into ``mask_folder/dicom``.

    Args:
        input_path: the predicted input (a DICOM series folder or a folder of them).
        mask_folder: the folder holding ``<case>.nii.gz`` masks.
        output_format: "dicom-seg" or "rtstruct".
        label_names: label value -> name (codes are chosen from names).
        seg_type: "binary" or "fractional" (SEG only). A fractional SEG holds the network's
            probabilities where ``<case>.npz`` (save_probabilities) is beside the mask, else the
            mask's 0/1.
        anonymize: blank identifying patient and visit attributes.

    Returns:
        The files written.
    """
    from autolung.inference.inputs import discover_cases, mask_ending
    from autolung.io.images import read_label

    check_dicom_input(input_path, output_format)
    written = []
    for case in discover_cases(Path(input_path)):
        mask_path = Path(mask_folder) / f"{case.case_id}{mask_ending(case)}"
        mask, _ = read_label(mask_path)
        target = Path(mask_folder) / DICOM_OUTPUT_FOLDER / f"{case.case_id}{_SUFFIX[output_format]}"
        if output_format == "dicom-seg":
            from autolung.reporting.dicom_seg import write_dicom_seg

            fractions = _probabilities(Path(mask_folder), case.case_id) if seg_type == "fractional" else None
            write_dicom_seg(case.sources[0], mask, target, label_names, seg_type=seg_type, anonymize=anonymize,
                            fractions=fractions)
        else:
            from autolung.reporting.rtstruct import write_rtstruct

            write_rtstruct(case.sources[0], mask, target, label_names, anonymize=anonymize)
        written.append(target)
    return written


def _probabilities(folder: Path, case_id: str) -> dict | None:
    """Label -> probabilities from ``<case>.npz``, or None (with a warning) when unusable."""
    from autolung.inference.cv_outputs import load_cv_probabilities, probabilities_path

    path = probabilities_path(folder, case_id)
    if not path.is_file():
        logger.warning("%s: fractional SEG holds the mask's 0/1 values; predict with save_probabilities to store "
                       "probabilities", case_id)
        return None
    saved = load_cv_probabilities(path)
    if not saved.region_mapping.is_disjoint:
        logger.warning("%s: overlapping regions cannot be stored per label; fractional SEG holds the mask's 0/1 "
                       "values", case_id)
        return None
    return {region[0]: saved.probabilities[channel] for channel, region in enumerate(saved.region_mapping.regions)}
