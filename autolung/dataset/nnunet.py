"""The nnU-Net v2 raw layout.

``dataset.json`` holds ``channel_names`` (``{"0": "CT"}``), ``labels`` keyed by name
(``{"background": 0, "lung": 1}``) and ``file_ending``; images are
``imagesTr/<case>_<channel:04d><ending>`` and labels ``labelsTr/<case><ending>``.
A label value may be a list of values: then the labels are nested *regions* painted in
``regions_class_order``. An optional ``dataset`` object lists the files explicitly.
A label named ``"ignore"`` marks unannotated voxels (nnU-Net's sparse annotation): it must be the
highest label value, is no output channel and counts nowhere (loss, pseudo-Dice, evaluation).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from autolung.dataset.dataset_json import channel_list, entry_path, is_of_type, require
from autolung.dataset.problem import Problem
from autolung.dataset.spec import LAYOUT_NNUNET, CaseFiles, DatasetSpec
from autolung.errors import InvalidInputError
from autolung.io.formats import image_ending, strip_ending
from autolung.labels import RegionMapping
from autolung.utils.atomic import is_partial_file

IMAGES_FOLDER = "imagesTr"
IGNORE_LABEL_NAME = "ignore"
LABELS_FOLDER = "labelsTr"
_CHANNEL_SUFFIX = re.compile(r"(?P<case>.+)_(?P<channel>\d{4})")


def load_nnunet(folder: Path, payload: dict[str, Any], json_path: Path) -> DatasetSpec:
    """Build the spec of an nnU-Net v2 raw dataset.

    Args:
        folder: the resolved dataset folder.
        payload: its parsed dataset.json.
        json_path: dataset.json, for messages.

    Returns:
        The spec; badly named image files are skipped and recorded in ``spec.issues``.

    Raises:
        InvalidInputError: missing or malformed ``channel_names``, ``labels``, ``file_ending``
            or ``regions_class_order``, or no ``imagesTr`` folder.
    """
    channel_names = channel_list(require(payload, "channel_names", dict, json_path), "channel_names", json_path)
    ending = require(payload, "file_ending", str, json_path)
    if not ending.startswith(".") or len(ending) < 2:
        raise InvalidInputError(f"'file_ending' must look like '.nii.gz' or '.png', got {ending!r}", path=json_path)
    labels, regions = nnunet_labels(require(payload, "labels", dict, json_path),
                                    payload.get("regions_class_order"), json_path)
    if "dataset" in payload:
        cases, issues = _listed_cases(folder, require(payload, "dataset", dict, json_path), json_path)
    else:
        cases, issues = _scanned_cases(folder, ending, len(channel_names))
    return DatasetSpec(name=folder.name, folder=folder, layout=LAYOUT_NNUNET, channel_names=channel_names,
                       labels=labels, region_mapping=regions, file_ending=ending, cases=cases, metadata=payload,
                       issues=issues)


def nnunet_labels(mapping: dict[str, Any], class_order: Any, json_path: Path) -> tuple[dict[str, int], RegionMapping]:
    """Labels and output regions from nnU-Net's name-keyed ``labels``.

    Args:
        mapping: ``{"background": 0, "lung": 1}`` or with regions ``{"background": 0, "lung": [1, 2], "tumour": 2}``.
        class_order: ``regions_class_order`` (required with regions): the label each region paints.
        json_path: dataset.json.

    Returns:
        Name -> value (a region's value is the label it paints) and the region mapping.

    Raises:
        InvalidInputError: values not integers or lists of integers, no background 0,
            a value used twice, or a missing/mismatched ``regions_class_order``.
    """
    for name, value in mapping.items():
        is_list = isinstance(value, list) and value and all(is_of_type(v, int) for v in value)
        if not (is_of_type(value, int) or is_list):
            raise InvalidInputError(f"label {name!r} must be an integer or a list of integers, got {value!r}",
                                    path=json_path)
    background = [name for name, value in mapping.items() if value == 0]
    if not background:
        raise InvalidInputError("'labels' must declare a background with value 0", path=json_path)
    ignore = _ignore_label(mapping, json_path)
    foreground = {name: value for name, value in mapping.items()
                  if name not in background and name != IGNORE_LABEL_NAME}
    if any(isinstance(value, list) for value in foreground.values()):
        labels, regions = _region_labels(background[0], foreground, class_order, json_path)
    else:
        values = list(foreground.values())
        if len(set(values)) != len(values) or (ignore is not None and ignore in values):
            raise InvalidInputError(f"'labels' uses a value twice: {mapping}", path=json_path)
        labels, regions = {background[0]: 0, **foreground}, RegionMapping.one_per_label(values)
    if ignore is None:
        return labels, regions
    return {**labels, IGNORE_LABEL_NAME: ignore}, RegionMapping(regions.regions, regions.paint_labels, ignore)


def _ignore_label(mapping: dict[str, Any], json_path: Path) -> int | None:
    """The value of the ``"ignore"`` label, checked to be an integer above every other label value.

    nnU-Net requires the same, so that label maps keep 0..N-1 for real classes.
    """
    if IGNORE_LABEL_NAME not in mapping:
        return None
    value = mapping[IGNORE_LABEL_NAME]
    if not is_of_type(value, int) or value <= 0:
        raise InvalidInputError(f"the 'ignore' label must be a positive integer, got {value!r}", path=json_path)
    others = [v for name, item in mapping.items() if name != IGNORE_LABEL_NAME
              for v in (item if isinstance(item, list) else [item])]
    if value <= max(others):
        raise InvalidInputError(f"the 'ignore' label ({value}) must be the highest label value; "
                                f"{max(others)} is higher or equal", path=json_path)
    return int(value)


def _region_labels(background: str, foreground: dict[str, Any], class_order: Any,
                   json_path: Path) -> tuple[dict[str, int], RegionMapping]:
    """Nested regions: one output channel per foreground entry, painted in ``regions_class_order``."""
    if not isinstance(class_order, list) or not all(is_of_type(v, int) for v in class_order):
        raise InvalidInputError("labels with regions (list values) need 'regions_class_order', "
                                "a list with the label each region paints", path=json_path)
    if len(class_order) != len(foreground):
        raise InvalidInputError(f"'regions_class_order' has {len(class_order)} entries but 'labels' declares "
                                f"{len(foreground)} regions", path=json_path)
    regions = tuple(tuple(int(v) for v in value) if isinstance(value, list) else (int(value),)
                    for value in foreground.values())
    labels = {background: 0, **{name: int(paint) for name, paint in zip(foreground, class_order)}}
    return labels, RegionMapping(regions=regions, paint_labels=tuple(int(v) for v in class_order))


def _scanned_cases(folder: Path, ending: str, num_channels: int) -> tuple[list[CaseFiles], list[Problem]]:
    """Cases found in ``imagesTr``: every case with any channel file, expecting all channels."""
    images = folder / IMAGES_FOLDER
    if not images.is_dir():
        raise InvalidInputError(f"{IMAGES_FOLDER} folder not found (nnU-Net layout)", path=images)
    case_ids: set[str] = set()
    issues: list[Problem] = []
    for entry in sorted(images.iterdir()):
        if entry.name.startswith(".") or is_partial_file(entry) or not entry.name.endswith(ending):
            continue
        match = _CHANNEL_SUFFIX.fullmatch(entry.name[: -len(ending)])
        if match is None:
            issues.append(Problem(entry, f"image file name must end in _<channel:04d>{ending} "
                                         f"(e.g. case_0000{ending})"))
        elif int(match["channel"]) >= num_channels:
            issues.append(Problem(entry, f"channel {int(match['channel'])} but dataset.json declares "
                                         f"{num_channels} channel(s)"))
        else:
            case_ids.add(match["case"])
    label_files = _label_files(folder / LABELS_FOLDER)
    cases = [CaseFiles(case_id=case, images=[images / f"{case}_{c:04d}{ending}" for c in range(num_channels)],
                       label=_label_for(folder / LABELS_FOLDER, case, ending, label_files))
             for case in sorted(case_ids)]
    return cases, issues


def _label_files(labels: Path) -> dict[str, list[Path]]:
    """Label files by case id (file name without image ending)."""
    if not labels.is_dir():
        return {}
    found: dict[str, list[Path]] = {}
    for entry in sorted(labels.iterdir()):
        if not entry.name.startswith(".") and not is_partial_file(entry) and image_ending(entry):
            found.setdefault(strip_ending(entry), []).append(entry)
    return found


def _label_for(labels: Path, case: str, ending: str, label_files: dict[str, list[Path]]) -> Path:
    """``labelsTr/<case><ending>``; else the case's only label file in another format.

    Datasets with lossy images (JPEG) keep their masks lossless (PNG), so the label ending may
    differ from ``file_ending``. When nothing fits, the expected path is returned (and reported
    missing by verify).
    """
    expected = labels / f"{case}{ending}"
    candidates = label_files.get(case, [])
    if expected in candidates or len(candidates) != 1:
        return expected
    return candidates[0]


def _listed_cases(folder: Path, listing: dict[str, Any], json_path: Path) -> tuple[list[CaseFiles], list[Problem]]:
    """Cases from an explicit ``"dataset": {case: {"images": [...], "label": ...}}`` object."""
    cases: list[CaseFiles] = []
    issues: list[Problem] = []
    for case_id, entry in listing.items():
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("images"), list):
                raise InvalidInputError(f"dataset[{case_id!r}] must hold an 'images' list", path=json_path)
            images = [entry_path(folder, p, f"dataset[{case_id!r}] image", json_path) for p in entry["images"]]
            label = entry_path(folder, entry["label"], f"dataset[{case_id!r}] label", json_path) \
                if "label" in entry else None
        except InvalidInputError as exc:
            issues.append(Problem(json_path, exc.problem))
            continue
        cases.append(CaseFiles(case_id=str(case_id), images=images, label=label))
    return cases, issues
