"""Decathlon <-> nnU-Net v2 raw layout: same cases, same voxels, files arranged the other way.

Decathlon keeps all channels of a case in one (4D) NIfTI file; nnU-Net keeps one file per
channel (``_0000``, ``_0001``...). Files that need no change are copied byte for byte.
"""
from __future__ import annotations

import logging
from pathlib import Path

from autolung.convert.dataset_writer import LAYOUTS, MSD_ENDING, DatasetWriter
from autolung.convert.source import load_source, output_labels
from autolung.convert.transfer import join_channels, split_channels, transfer_image, transfer_label
from autolung.dataset.spec import LAYOUT_MSD, CaseFiles
from autolung.errors import InvalidInputError
from autolung.progress import ProgressReporter, reporter, track
from autolung.utils.staging import check_output_folder, staged_folder

logger = logging.getLogger(__name__)


def convert_layout(input_folder: Path, output: Path, to: str, file_ending: str | None = None,
                   overwrite: bool = False, progress: ProgressReporter | None = None) -> Path:
    """Write ``input_folder``'s dataset in layout ``to``; the input is only read.

    Args:
        input_folder: a dataset in either layout.
        output: the new dataset folder (built in a staging folder, renamed at the end).
        to: ``"nnunet"`` or ``"msd"``.
        file_ending: image ending of an nnU-Net output; None keeps the input's (Decathlon output
            is always ``.nii.gz``).
        overwrite: replace a non-empty ``output``.
        progress: receives the "convert" task, one step per case (default: nothing).

    Returns:
        The new dataset folder.
    """
    if to not in LAYOUTS:
        raise InvalidInputError(f"unknown layout {to!r}; use one of {', '.join(LAYOUTS)}", path=output)
    if to == LAYOUT_MSD and file_ending not in (None, MSD_ENDING):
        logger.warning("the Decathlon layout stores NIfTI; ignoring file ending %s", file_ending)
    check_output_folder(output, (input_folder,), overwrite)
    spec, cases = load_source(input_folder)
    labels, extra = output_labels(spec, to)
    with staged_folder(output) as staging:
        writer = DatasetWriter(staging, to, output.name, list(spec.channel_names), labels,
                               file_ending or spec.file_ending, extra=_carried_keys(spec.metadata, extra))
        for case in track(cases, reporter(progress), "convert", len(cases)):
            _write_case(writer, case, spec.num_channels)
        writer.write_dataset_json()
    logger.info("wrote %s (%s layout, %d cases)", output, to, len(cases))
    return output


def _carried_keys(metadata: dict, extra: dict) -> dict:
    """Descriptive dataset.json keys worth keeping (licence, reference...), plus ``extra``."""
    kept = {key: metadata[key] for key in ("description", "reference", "licence", "license", "release")
            if key in metadata}
    return {**kept, **extra}


def _write_case(writer: DatasetWriter, case: CaseFiles, num_channels: int) -> None:
    labelled = case.label is not None
    targets = writer.image_targets(case.case_id, labelled)
    if writer.layout == LAYOUT_MSD:
        join_channels(case.images, targets[0])
    elif len(case.images) == 1 and num_channels > 1:
        split_channels(case.images[0], targets)
    else:
        for source, target in zip(case.images, targets):
            transfer_image(source, target)
    if case.label is not None:
        transfer_label(case.label, writer.label_target(case.case_id))
    writer.add_case(case.case_id, labelled)
