"""Reading the dataset being converted: all its cases (training and test) and its label declaration."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from autolung.dataset.dataset_json import entry_path
from autolung.dataset.layout import load_dataset
from autolung.dataset.spec import LAYOUT_MSD, LAYOUT_NNUNET, CaseFiles, DatasetSpec
from autolung.errors import InvalidInputError
from autolung.io.formats import strip_ending
from autolung.io.images import image_files_in

logger = logging.getLogger(__name__)


def load_source(folder: Path) -> tuple[DatasetSpec, list[CaseFiles]]:
    """Load a dataset and list every case: training cases, then test images (label None).

    Args:
        folder: the dataset folder.

    Returns:
        The spec and the cases to convert.
    """
    spec = load_dataset(folder)
    training_ids = set(spec.case_ids)
    tests = [case for case in _test_cases(spec) if case.case_id not in training_ids]
    return spec, [*spec.cases, *tests]


def _test_cases(spec: DatasetSpec) -> list[CaseFiles]:
    """Images without labels: Decathlon's ``test`` list, or nnU-Net's ``imagesTs`` folder."""
    if spec.layout == LAYOUT_MSD:
        entries = spec.metadata.get("test") or []
        if not isinstance(entries, list):
            return []
        paths = [entry_path(spec.folder, entry, f"test[{i}]", spec.dataset_json) for i, entry in enumerate(entries)]
        return [CaseFiles(strip_ending(path), [path], None) for path in paths if path.exists()]
    folder = spec.folder / "imagesTs"
    if not folder.is_dir():
        return []
    return [CaseFiles(case_id, paths, None) for case_id, paths in image_files_in(folder).items()]


def output_labels(spec: DatasetSpec, layout: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``labels`` object for the new dataset.json and extra keys (``regions_class_order``).

    nnU-Net region labels are carried over verbatim between nnU-Net datasets; the Decathlon
    layout cannot hold them.

    Raises:
        InvalidInputError: region labels with Decathlon output.
    """
    regions = "regions_class_order" in spec.metadata
    if regions and layout == LAYOUT_NNUNET and spec.layout == LAYOUT_NNUNET:
        return dict(spec.metadata["labels"]), {"regions_class_order": spec.metadata["regions_class_order"]}
    if regions:
        raise InvalidInputError("labels are nested regions (regions_class_order); the Decathlon layout cannot "
                                "hold them", path=spec.dataset_json)
    return dict(spec.labels), {}
