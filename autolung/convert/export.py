"""A dataset -> a plain folder of image/mask pairs named by patterns (the reverse of ``pairs``)."""
from __future__ import annotations

import logging
from pathlib import Path

from autolung.convert.patterns import CHANNEL, check_pattern, format_pattern
from autolung.convert.source import load_source
from autolung.convert.transfer import join_channels, split_channels, transfer_image, transfer_label
from autolung.dataset.spec import CaseFiles
from autolung.errors import InvalidInputError
from autolung.progress import ProgressReporter, reporter, track
from autolung.utils.atomic import write_json_atomic
from autolung.utils.staging import check_output_folder, staged_folder

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.json"


def export_pairs(input_folder: Path, output: Path, image_pattern: str, mask_pattern: str,
                 overwrite: bool = False, progress: ProgressReporter | None = None) -> Path:
    """Write each case of a dataset as files named by ``image_pattern`` and ``mask_pattern``.

    Several channels go to separate files when ``image_pattern`` holds ``{channel}`` (0, 1, ...),
    else into one file (4D for NIfTI). ``labels.json`` records the label names and values.

    Args:
        input_folder: a dataset in either layout.
        output: the folder to create (staged, renamed at the end).
        image_pattern: e.g. ``"{case}_img.nii.gz"`` or ``"images/{case}_{channel}.nii.gz"``.
        mask_pattern: e.g. ``"{case}_mask.nii.gz"``.
        overwrite: replace a non-empty ``output``.
        progress: receives the "export" task, one step per case (default: nothing).

    Returns:
        The output folder.
    """
    check_pattern(image_pattern, allow_channel=True)
    check_pattern(mask_pattern)
    if format_pattern(image_pattern, "x", 0) == format_pattern(mask_pattern, "x"):
        raise InvalidInputError("image and mask patterns name the same file", path=mask_pattern)
    check_output_folder(output, (input_folder,), overwrite)
    spec, cases = load_source(input_folder)
    with staged_folder(output) as staging:
        for case in track(cases, reporter(progress), "export", len(cases)):
            _export_case(staging, case, spec.num_channels, image_pattern, mask_pattern)
        write_json_atomic(staging / LABELS_FILE, {"labels": spec.labels, "channel_names": spec.channel_names})
    logger.info("exported %d cases to %s", len(cases), output)
    return output


def _export_case(folder: Path, case: CaseFiles, num_channels: int, image_pattern: str, mask_pattern: str) -> None:
    if CHANNEL in image_pattern:
        targets = [folder / format_pattern(image_pattern, case.case_id, c) for c in range(num_channels)]
        if len(case.images) == 1:
            split_channels(case.images[0], targets)
        else:
            for source, target in zip(case.images, targets):
                transfer_image(source, target)
    else:
        join_channels(case.images, folder / format_pattern(image_pattern, case.case_id))
    if case.label is not None:
        transfer_label(case.label, folder / format_pattern(mask_pattern, case.case_id))
