"""A plain folder of image/mask pairs (``{case}_img.nii.gz`` + ``{case}_mask.nii.gz``) -> a dataset."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autolung.convert.dataset_writer import LAYOUTS, DatasetWriter
from autolung.convert.patterns import (check_pattern, format_pattern, match_cases, pattern_ending, pattern_regex,
                                       relative_files)
from autolung.convert.transfer import join_channels, transfer_image, transfer_label
from autolung.dataset.spec import LAYOUT_MSD
from autolung.errors import InvalidInputError
from autolung.progress import ProgressReporter, reporter, track
from autolung.io.images import read_geometry, read_label
from autolung.utils.staging import check_output_folder, staged_folder

logger = logging.getLogger(__name__)

_LABEL_ITEM = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_ -]*)=(?P<value>\d+)$")


@dataclass(frozen=True)
class PairCase:
    """One case found in the folder: its channel files and its mask (None when missing)."""

    case_id: str
    images: list[Path]
    mask: Path | None


@dataclass(frozen=True)
class PairsOptions:
    """How to read the pairs folder and what dataset to make.

    Attributes:
        image_patterns: one pattern per channel, e.g. ``["{case}_img.nii.gz"]``.
        mask_pattern: e.g. ``"{case}_mask.nii.gz"``.
        layout: ``"nnunet"`` or ``"msd"``.
        labels: label name -> value; None to name the values found in the masks.
        channel_names: one name per image pattern; None for ``CT`` (one channel) or ``channel_<k>``.
        file_ending: image ending in the dataset (nnU-Net); None keeps the image pattern's.
        allow_unlabelled: put images without a mask in ``imagesTs/`` instead of refusing.
        overwrite: replace a non-empty output folder.
    """

    image_patterns: tuple[str, ...]
    mask_pattern: str
    layout: str = "nnunet"
    labels: dict[str, int] | None = None
    channel_names: tuple[str, ...] | None = None
    file_ending: str | None = None
    allow_unlabelled: bool = False
    overwrite: bool = False


def parse_labels(items: list[str]) -> dict[str, int]:
    """``["background=0 lung=1", "tumour=2"]`` (spaces or commas between items) -> name -> value.

    Background (0) is added when missing.

    Args:
        items: the ``--labels`` values.

    Returns:
        Label name -> value, sorted by value.

    Raises:
        InvalidInputError: malformed item, or a name or value given twice.
    """
    labels: dict[str, int] = {}
    for item in (part for text in items for part in re.split(r"[,\s]+", text.strip()) if part):
        match = _LABEL_ITEM.match(item)
        if match is None:
            raise InvalidInputError(f"`labels`: label {item!r} must look like name=value, e.g. lung=1")
        name, value = match["name"], int(match["value"])
        if name in labels or value in labels.values():
            raise InvalidInputError(f"`labels`: label {item!r} repeats a name or value")
        labels[name] = value
    if labels and 0 not in labels.values():
        labels = {"background": 0, **labels}
    return dict(sorted(labels.items(), key=lambda item: item[1]))


def find_pairs(folder: Path, options: PairsOptions) -> list[PairCase]:
    """Every case in ``folder``: files of the first image pattern, with their other channels and mask.

    Raises:
        InvalidInputError: no matching image, a missing channel file, or (unless
            ``allow_unlabelled``) images without a mask.
    """
    files = relative_files(folder)
    image_pattern, mask_pattern = options.image_patterns[0], options.mask_pattern
    # A file matching both patterns belongs to the more specific one: with "{case}.nii.gz" and
    # "{case}_mask.nii.gz", "a_mask.nii.gz" is a mask; with "{case}_img.nii.gz" and "{case}.nii.gz",
    # "a_img.nii.gz" is an image.
    mask_wins = _literal_length(mask_pattern) > _literal_length(image_pattern)
    found = match_cases(files, image_pattern, exclude=pattern_regex(mask_pattern) if mask_wins else None)
    if not found:
        raise InvalidInputError(f"no file matches the image pattern {options.image_patterns[0]!r}", path=folder)
    available = set(files)
    cases = []
    for case_id in found:
        images = [folder / format_pattern(p, case_id) for p in options.image_patterns]
        for image in images:
            if image.relative_to(folder).as_posix() not in available:
                raise InvalidInputError(f"channel file of case {case_id!r} is missing", path=image)
        mask_relative = format_pattern(options.mask_pattern, case_id)
        cases.append(PairCase(case_id, images, folder / mask_relative if mask_relative in available else None))
    _check_missing_masks(folder, cases, options)
    masks = match_cases(files, mask_pattern, exclude=None if mask_wins else pattern_regex(image_pattern))
    orphans = set(masks) - set(found)
    if orphans:
        logger.warning("%s: %d masks have no image and are skipped (e.g. %s)", folder, len(orphans), min(orphans))
    return cases


def _literal_length(pattern: str) -> int:
    """Characters of a pattern besides its placeholder: more means more specific."""
    return len(pattern.replace("{case}", ""))


def _check_missing_masks(folder: Path, cases: list[PairCase], options: PairsOptions) -> None:
    missing = [case for case in cases if case.mask is None]
    if missing and not options.allow_unlabelled:
        first = folder / format_pattern(options.mask_pattern, missing[0].case_id)
        raise InvalidInputError(f"mask not found ({len(missing)} of {len(cases)} cases have no mask; pass "
                                "`allow_unlabelled` to put them in imagesTs)", path=first)


def check_masks(cases: list[PairCase], labels: dict[str, int] | None,
                progress: ProgressReporter | None = None) -> dict[str, int]:
    """Read every mask: same shape as its image, values among the labels; return the labels to declare.

    Args:
        cases: the pairs found.
        labels: the declared labels, or None to name the values found.
        progress: receives the "check masks" task, one step per case (default: nothing).

    Returns:
        Label name -> value.

    Raises:
        InvalidInputError: a mask whose shape differs from its image or holding undeclared values.
    """
    if labels is not None and 0 not in labels.values():
        labels = {"background": 0, **labels}
    found: set[int] = {0}
    for case in track(cases, reporter(progress), "check masks", len(cases)):
        if case.mask is not None:
            mask, mask_geometry = read_label(case.mask)
            image_geometry = read_geometry(case.images[0])
            if tuple(mask_geometry.shape) != tuple(image_geometry.shape):
                raise InvalidInputError(f"mask shape {mask_geometry.shape} differs from the image's "
                                        f"{image_geometry.shape} ({case.images[0].name})", path=case.mask)
            values = {int(v) for v in np.unique(mask)}
            if labels is not None and not values <= set(labels.values()):
                raise InvalidInputError(f"mask holds values {sorted(values - set(labels.values()))} not declared "
                                        f"in `labels` {labels}", path=case.mask)
            found |= values
    if labels is not None:
        return labels
    return {("background" if v == 0 else f"label_{v}"): v for v in sorted(found)}


def _channel_names(options: PairsOptions) -> list[str]:
    count = len(options.image_patterns)
    if options.channel_names:
        if len(options.channel_names) != count:
            raise InvalidInputError(f"`channel_names`: {len(options.channel_names)} channel names for {count} "
                                    "image patterns")
        return list(options.channel_names)
    return ["CT"] if count == 1 else [f"channel_{k}" for k in range(count)]


def convert_pairs(input_folder: Path, output: Path, options: PairsOptions,
                  progress: ProgressReporter | None = None) -> Path:
    """Make a dataset from a folder of image/mask pairs; the input folder is only read.

    Args:
        input_folder: the folder holding the pairs (sub-folders allowed in the patterns).
        output: the dataset folder to create (written in a staging folder, renamed at the end).
        options: patterns, layout, labels and channel names.
        progress: receives the "convert" task, one step per case (default: nothing).

    Returns:
        The dataset folder.
    """
    for pattern in (*options.image_patterns, options.mask_pattern):
        check_pattern(pattern)
    if options.mask_pattern in options.image_patterns:
        raise InvalidInputError("the mask pattern equals an image pattern", path=options.mask_pattern)
    if options.layout not in LAYOUTS:
        raise InvalidInputError(f"`layout`: unknown layout {options.layout!r}; use one of {', '.join(LAYOUTS)}")
    check_output_folder(output, (input_folder,), options.overwrite)
    cases = find_pairs(input_folder, options)
    labels = check_masks(cases, options.labels, None)
    ending = options.file_ending or pattern_ending(options.image_patterns[0])
    with staged_folder(output) as staging:
        writer = DatasetWriter(staging, options.layout, output.name, _channel_names(options), labels, ending,
                               extra={"description": "converted by autolung convert pairs"})
        for case in track(cases, reporter(progress), "convert", len(cases)):
            _write_case(writer, case)
        writer.write_dataset_json()
    logger.info("wrote %d cases to %s", len(cases), output)
    return output


def _write_case(writer: DatasetWriter, case: PairCase) -> None:
    labelled = case.mask is not None
    targets = writer.image_targets(case.case_id, labelled)
    if writer.layout == LAYOUT_MSD:
        join_channels(case.images, targets[0])
    else:
        for source, target in zip(case.images, targets):
            transfer_image(source, target)
    if case.mask is not None:
        transfer_label(case.mask, writer.label_target(case.case_id))
    writer.add_case(case.case_id, labelled)
