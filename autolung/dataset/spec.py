"""What a raw dataset holds, independent of its layout on disk: :class:`DatasetSpec` and :class:`CaseFiles`."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from autolung.dataset.problem import Problem
from autolung.io.formats import is_raster_ending
from autolung.labels import RegionMapping

LAYOUT_MSD = "msd"
LAYOUT_NNUNET = "nnunet"


@dataclass(frozen=True)
class CaseFiles:
    """The files of one training case.

    Attributes:
        case_id: unique name of the case (file name without channel suffix and ending).
        images: one file per channel (nnU-Net), or one file holding all channels (Decathlon 4D).
            Paths may not exist; :func:`autolung.dataset.verify.verify_dataset` reports that.
        label: the label map, or None when the dataset declares none for this case.
    """

    case_id: str
    images: list[Path]
    label: Path | None


@dataclass
class DatasetSpec:
    """A raw dataset as described by its ``dataset.json`` and its files.

    Attributes:
        name: the dataset folder's name (used under preprocessed/ and results/).
        folder: the dataset folder.
        layout: ``"msd"`` or ``"nnunet"``.
        channel_names: one name per input channel, in channel order.
        labels: label name -> value, background (0) included. For nnU-Net region labels the
            value is the label the region paints (its ``regions_class_order`` entry).
        region_mapping: network output channels as sets of label values.
        file_ending: ending of the image files, e.g. ``".nii.gz"`` or ``".png"``.
        cases: the training cases in dataset order.
        metadata: ``dataset.json`` as read.
        issues: problems with single entries that were skipped while loading (only kept when
            loading with ``strict=False``; a strict load raises on the first one).
    """

    name: str
    folder: Path
    layout: str
    channel_names: list[str]
    labels: dict[str, int]
    region_mapping: RegionMapping
    file_ending: str
    cases: list[CaseFiles]
    metadata: dict[str, Any] = field(default_factory=dict)
    issues: list[Problem] = field(default_factory=list)

    @property
    def dataset_json(self) -> Path:
        return self.folder / "dataset.json"

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def case_ids(self) -> list[str]:
        return [case.case_id for case in self.cases]

    @property
    def declared_label_values(self) -> set[int]:
        """Every label value a label map may contain (background and all region members)."""
        values = {0, *self.labels.values()}
        values.update(v for region in self.region_mapping.regions for v in region)
        return values

    @cached_property
    def is_2d(self) -> bool:
        """True when the cases are 2D images (raster files, or 2D files of other formats).

        Decided by the file ending when it is a 2D raster format, else by reading the header
        of the first case's first image (a one-slice 3D NIfTI counts as 3D).
        """
        if is_raster_ending(self.file_ending):
            return True
        for case in self.cases:
            if case.images and case.images[0].exists():
                from autolung.io.images import read_geometry  # deferred: io is heavier than this module

                return read_geometry(case.images[0]).is_2d
        return False

    def case(self, case_id: str) -> CaseFiles:
        """The case named ``case_id``.

        Args:
            case_id: a case id of this dataset.

        Returns:
            Its files.

        Raises:
            KeyError: when there is no such case.
        """
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise KeyError(case_id)
