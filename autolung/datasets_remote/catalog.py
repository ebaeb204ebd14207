"""The Medical Segmentation Decathlon archives and the names users may call them by.

URLs and md5 checksums are the ones MONAI's ``monai.apps.DecathlonDataset`` publishes for the
copies of the MSD tar files hosted for MONAI (``msd-for-monai`` on S3).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from autolung.errors import InvalidInputError

MSD_BASE_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com"

# task id -> md5 of its tar file, as published by MONAI.
MSD_TASKS: dict[str, str] = {
    "Task01_BrainTumour": "240a19d752f0d9e9101544901065d872",
    "Task02_Heart": "06ee59366e1e5124267b774dbd654057",
    "Task03_Liver": "a90ec6c4aa7f6a3d087205e23d4e6397",
    "Task04_Hippocampus": "9d24dba78a72977dbd1d2e110310f31b",
    "Task05_Prostate": "35138f08b1efaef89d7424d2bcc928db",
    "Task06_Lung": "8afd997733c7fc0432f71255ba4e52dc",
    "Task07_Pancreas": "4f7080cfca169fa8066d17ce6eb061e4",
    "Task08_HepaticVessel": "641d79e80ec66453921d997fbf12a29c",
    "Task09_Spleen": "410d4a301da4e5b2f6f86ec3ddba524e",
    "Task10_Colon": "bad7a188931dc2f6acf72b08eb6202d0",
}

FRIENDLY_PREFIX = "Decathlon_"
# A dataset name becomes a folder name under raw/: keep it to safe characters.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


@dataclass(frozen=True)
class RemoteDataset:
    """One downloadable archive and where it is installed.

    Attributes:
        name: the folder name under ``raw/`` (the name the user asked for).
        url: where the archive is fetched from.
        md5: expected md5 of the archive (lower-case hex), or None to skip verification.
        archive_name: file name the archive is stored under while downloading.
    """

    name: str
    url: str
    md5: str | None
    archive_name: str


def _task_by_friendly_name(name: str) -> str | None:
    """``Decathlon_Lung`` / ``Task06_Lung`` / ``task06_lung`` -> ``Task06_Lung`` (or None)."""
    lowered = name.lower()
    for task in MSD_TASKS:
        organ = task.split("_", 1)[1]
        if lowered in (task.lower(), f"{FRIENDLY_PREFIX}{organ}".lower()):
            return task
    return None


def _canonical_name(requested: str, task: str) -> str:
    """The folder name: the user's form of the name with canonical capitalisation."""
    organ = task.split("_", 1)[1]
    return task if requested.lower() == task.lower() else f"{FRIENDLY_PREFIX}{organ}"


def known_names() -> list[str]:
    """Every accepted dataset name (friendly and task forms)."""
    names = []
    for task in MSD_TASKS:
        names.extend([f"{FRIENDLY_PREFIX}{task.split('_', 1)[1]}", task])
    return names


def resolve_remote_dataset(name: str, url: str | None = None, md5: str | None = None) -> RemoteDataset:
    """Look up a dataset by name; ``url``/``md5`` override the table (mirrors, tests).

    Args:
        name: ``Decathlon_<Organ>`` or ``TaskNN_<Organ>`` (case-insensitive); any safe folder
            name when ``url`` is given.
        url: archive URL overriding the table.
        md5: expected md5 overriding the table.

    Returns:
        The resolved :class:`RemoteDataset`.

    Raises:
        InvalidInputError: for an unknown name without ``url``, an unsafe name, or a malformed md5.
    """
    if md5 is not None and not _MD5.match(md5):
        raise InvalidInputError(f"`md5` must be 32 hexadecimal digits, got {md5!r}", path=name)
    task = _task_by_friendly_name(name)
    if task is None:
        if url is None:
            raise InvalidInputError(f"unknown dataset; known names: {', '.join(known_names())} "
                                    "(or give `url` for any other archive)", path=name)
        if not _SAFE_NAME.match(name):
            raise InvalidInputError("dataset name may hold only letters, digits, '_', '-' and '.'", path=name)
        return RemoteDataset(name=name, url=url, md5=md5.lower() if md5 else None,
                             archive_name=f"{name}.tar")
    # A mirror given with --url alone is expected to hold the very same file: keep the table's md5.
    chosen_md5 = md5 if md5 is not None else MSD_TASKS[task]
    return RemoteDataset(
        name=_canonical_name(name, task),
        url=url or f"{MSD_BASE_URL}/{task}.tar",
        md5=chosen_md5.lower() if chosen_md5 else None,
        archive_name=f"{task}.tar",
    )
