"""Where a new dataset's files go and its ``dataset.json``, in Decathlon or nnU-Net v2 layout.

Decathlon (MSD): ``imagesTr/<case>.nii.gz`` (all channels in one file, 4D when several),
``labelsTr/<case>.nii.gz``, and ``dataset.json`` with ``modality``, ``labels`` (value -> name),
``training`` and ``test`` lists.
nnU-Net v2: ``imagesTr/<case>_0000<ending>`` (one file per channel), ``labelsTr/<case><ending>``,
and ``dataset.json`` with ``channel_names``, ``labels`` (name -> value), ``numTraining``,
``file_ending``. Cases without a label go to ``imagesTs/`` in both layouts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolung.dataset.spec import LAYOUT_MSD, LAYOUT_NNUNET
from autolung.errors import InvalidInputError
from autolung.io.formats import image_ending
from autolung.utils.atomic import write_json_atomic

LAYOUTS = (LAYOUT_NNUNET, LAYOUT_MSD)
MSD_ENDING = ".nii.gz"
_LOSSY_ENDINGS = (".jpg", ".jpeg")


@dataclass
class DatasetWriter:
    """Names the files of a dataset being written and writes its ``dataset.json`` at the end.

    Attributes:
        folder: the (staging) dataset folder.
        layout: ``"nnunet"`` or ``"msd"``.
        name: the dataset's name for ``dataset.json``.
        channel_names: one name per channel.
        labels: label name -> value, background included; or, for nnU-Net, a ``labels`` object
            copied from a source dataset.json (region labels with lists of values).
        file_ending: image ending (always ``.nii.gz`` for Decathlon).
        extra: further keys for ``dataset.json`` (description, provenance, ``regions_class_order``).
    """

    folder: Path
    layout: str
    name: str
    channel_names: list[str]
    labels: dict[str, Any]
    file_ending: str = MSD_ENDING
    extra: dict[str, Any] = field(default_factory=dict)
    _training: list[str] = field(default_factory=list)
    _test: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InvalidInputError(f"unknown layout {self.layout!r}; use one of {', '.join(LAYOUTS)}")
        if self.layout == LAYOUT_MSD:
            self.file_ending = MSD_ENDING
        if image_ending(f"x{self.file_ending}") != self.file_ending.lower():
            raise InvalidInputError(f"`file_ending` {self.file_ending!r} is not a supported image ending "
                                    "such as .nii.gz or .png")

    def image_targets(self, case_id: str, labelled: bool) -> list[Path]:
        """The image file(s) of a case: one per channel (nnU-Net) or one for all (Decathlon)."""
        subfolder = self.folder / ("imagesTr" if labelled else "imagesTs")
        if self.layout == LAYOUT_MSD:
            return [subfolder / f"{case_id}{self.file_ending}"]
        return [subfolder / f"{case_id}_{c:04d}{self.file_ending}" for c in range(len(self.channel_names))]

    @property
    def label_ending(self) -> str:
        """Labels share the image ending, except that lossy JPEG images get lossless PNG masks."""
        return ".png" if self.file_ending.lower() in _LOSSY_ENDINGS else self.file_ending

    def label_target(self, case_id: str) -> Path:
        """The label file of a case."""
        return self.folder / "labelsTr" / f"{case_id}{self.label_ending}"

    def add_case(self, case_id: str, labelled: bool) -> None:
        """Record a case whose files have been written (for the dataset.json lists and counts)."""
        (self._training if labelled else self._test).append(case_id)

    def write_dataset_json(self) -> Path:
        """Write ``dataset.json`` for the cases added so far; return its path."""
        payload = self._msd_json() if self.layout == LAYOUT_MSD else self._nnunet_json()
        path = self.folder / "dataset.json"
        write_json_atomic(path, payload)
        return path

    def _nnunet_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "channel_names": {str(i): n for i, n in enumerate(self.channel_names)},
            "labels": dict(self.labels),
            "numTraining": len(self._training),
            "file_ending": self.file_ending,
            **self.extra,
        }

    def _msd_json(self) -> dict[str, Any]:
        by_value = {}
        for label_name, value in self.labels.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInputError(f"label {label_name!r} is a region ({value!r}); the Decathlon layout "
                                        "only holds one value per label", path=self.folder)
            by_value[str(value)] = label_name
        return {
            "name": self.name,
            "tensorImageSize": "4D" if len(self.channel_names) > 1 else "3D",
            "modality": {str(i): n for i, n in enumerate(self.channel_names)},
            "labels": dict(sorted(by_value.items(), key=lambda item: int(item[0]))),
            "numTraining": len(self._training),
            "numTest": len(self._test),
            "training": [{"image": f"./imagesTr/{c}{self.file_ending}", "label": f"./labelsTr/{c}{self.file_ending}"}
                         for c in self._training],
            "test": [f"./imagesTs/{c}{self.file_ending}" for c in self._test],
            **{k: v for k, v in self.extra.items() if k != "regions_class_order"},
        }
