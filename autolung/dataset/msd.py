"""The Medical Segmentation Decathlon layout.

``dataset.json`` lists ``training`` pairs (``{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}``),
``modality`` (``{"0": "CT"}``) and ``labels`` keyed by value (``{"0": "background", "1": "tumour"}``).
Multi-modal cases are one 4D file whose 4th dimension holds the channels.

nnU-Net v1 raw folders (``TaskXXX_Name``) keep this dataset.json but store each channel as its own
file, ``imagesTr/<case>_0000.nii.gz``, while ``training`` still names ``./imagesTr/<case>.nii.gz``.
When the named file is absent and the channel files exist, those are the case's images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from autolung.dataset.dataset_json import channel_list, entry_path, require
from autolung.dataset.problem import Problem
from autolung.dataset.spec import LAYOUT_MSD, CaseFiles, DatasetSpec
from autolung.errors import InvalidInputError
from autolung.io.formats import image_ending, strip_ending
from autolung.labels import RegionMapping


def load_msd(folder: Path, payload: dict[str, Any], json_path: Path) -> DatasetSpec:
    """Build the spec of a Decathlon-layout dataset.

    Args:
        folder: the resolved dataset folder.
        payload: its parsed dataset.json.
        json_path: dataset.json, for messages.

    Returns:
        The spec; bad ``training`` entries are skipped and recorded in ``spec.issues``.

    Raises:
        InvalidInputError: missing or malformed ``modality``, ``labels`` or ``training``.
    """
    channel_names = channel_list(require(payload, "modality", dict, json_path), "modality", json_path)
    labels = msd_labels(require(payload, "labels", dict, json_path), json_path)
    training = require(payload, "training", list, json_path)
    cases, issues = _training_cases(folder, training, json_path, len(channel_names))
    ending = next((image_ending(c.images[0]) for c in cases if image_ending(c.images[0])), ".nii.gz")
    foreground = [value for value in labels.values() if value != 0]
    return DatasetSpec(name=folder.name, folder=folder, layout=LAYOUT_MSD, channel_names=channel_names,
                       labels=labels, region_mapping=RegionMapping.one_per_label(foreground), file_ending=ending,
                       cases=cases, metadata=payload, issues=issues)


def msd_labels(mapping: dict[str, Any], json_path: Path) -> dict[str, int]:
    """Name -> value from Decathlon labels keyed by value.

    Args:
        mapping: ``{"0": "background", "1": "tumour"}``.
        json_path: dataset.json.

    Returns:
        ``{"background": 0, "tumour": 1}`` in value order.

    Raises:
        InvalidInputError: keys not integers, names not strings or used twice, or no label 0.
    """
    labels: dict[str, int] = {}
    for key, name in mapping.items():
        if not str(key).lstrip("-").isdigit() or not isinstance(name, str):
            raise InvalidInputError(f"'labels' must map label values to names, got {key!r}: {name!r}", path=json_path)
        if name in labels:
            raise InvalidInputError(f"label name {name!r} is used for values {labels[name]} and {key}", path=json_path)
        labels[name] = int(key)
    if 0 not in labels.values():
        raise InvalidInputError("'labels' must declare the background value 0", path=json_path)
    return dict(sorted(labels.items(), key=lambda item: item[1]))


def _training_cases(folder: Path, training: list[Any], json_path: Path,
                    num_channels: int = 1) -> tuple[list[CaseFiles], list[Problem]]:
    """Cases from the ``training`` list; bad entries and duplicate ids become issues."""
    cases: list[CaseFiles] = []
    issues: list[Problem] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(training):
        try:
            case = _training_case(folder, entry, index, json_path, num_channels)
        except InvalidInputError as exc:
            issues.append(Problem(json_path, exc.problem))
            continue
        if case.case_id in first_index:
            issues.append(Problem(json_path, f"duplicate case id {case.case_id!r} "
                                             f"(training entries {first_index[case.case_id]} and {index})"))
            continue
        first_index[case.case_id] = index
        cases.append(case)
    return cases, issues


def _training_case(folder: Path, entry: Any, index: int, json_path: Path, num_channels: int = 1) -> CaseFiles:
    """One ``{"image": ..., "label": ...}`` entry as CaseFiles."""
    if not isinstance(entry, dict) or "image" not in entry:
        raise InvalidInputError(f"training[{index}] must be an object with an 'image' path", path=json_path)
    image = entry_path(folder, entry["image"], f"training[{index}] image", json_path)
    label = entry_path(folder, entry["label"], f"training[{index}] label", json_path) if "label" in entry else None
    return CaseFiles(case_id=strip_ending(image), images=v1_channel_files(image, num_channels), label=label)


def v1_channel_files(image: Path, num_channels: int) -> list[Path]:
    """``[image]``, or nnU-Net v1's ``<case>_0000<ending>``, ... when ``image`` is absent and they exist.

    Args:
        image: the image path dataset.json names.
        num_channels: the channels ``modality`` declares.

    Returns:
        The files holding the case's channels (missing ones surface in verify and read_case).
    """
    ending = image_ending(image)
    if image.exists() or ending is None:
        return [image]
    stem = image.name[: -len(ending)]
    channels = [image.with_name(f"{stem}_{c:04d}{ending}") for c in range(num_channels)]
    return channels if channels[0].exists() else [image]
