"""Download, verify and install a remote dataset as ``<root>/raw/<name>``, all or nothing."""
from __future__ import annotations

import logging
from pathlib import Path

from autolung.datasets_remote.archive import extract_archive
from autolung.datasets_remote.catalog import RemoteDataset
from autolung.datasets_remote.fetch import download_file, verify_md5
from autolung.errors import InvalidInputError
from autolung.paths import DataRoot
from autolung.progress import ProgressReporter
from autolung.utils.locking import folder_lock
from autolung.utils.staging import check_output_folder, staged_folder

logger = logging.getLogger(__name__)

DOWNLOADS_FOLDER = "downloads"


def download_folder(data_root: DataRoot) -> Path:
    """Where archives (and their ``.part`` files) wait: ``<root>/downloads``, outside ``raw/``."""
    return data_root.root / DOWNLOADS_FOLDER


def install_dataset(remote: RemoteDataset, data_root: DataRoot, overwrite: bool = False,
                    keep_archive: bool = False, progress: ProgressReporter | None = None) -> Path:
    """Fetch ``remote``'s archive, check its md5 and unpack it into ``raw/<name>``.

    The archive is unpacked into a staging folder beside the target and renamed only when
    complete, so a failure at any step installs nothing.

    Args:
        remote: what to fetch (see :func:`autolung.datasets_remote.resolve_remote_dataset`).
        data_root: the data root; the dataset lands in ``data_root.raw / remote.name``.
        overwrite: replace an existing non-empty dataset folder.
        keep_archive: keep the archive in ``<root>/downloads`` after installing.
        progress: receives the "download" task (bytes) then the "unpack" task (archive members).

    Returns:
        The installed dataset folder.

    Raises:
        AutolungError: on download, checksum or archive problems (nothing is installed).
    """
    target = data_root.raw / remote.name
    check_output_folder(target, overwrite=overwrite)
    archive = download_folder(data_root) / remote.archive_name
    # Two runs appending to one .part would corrupt it: one download at a time per data root.
    with folder_lock(archive.parent, purpose=f"download {remote.name}"):
        logger.info("downloading %s to %s", remote.url, archive)
        download_file(remote.url, archive, progress=progress)
        verify_md5(archive, remote.md5)
        _unpack(archive, target, progress)
        if not keep_archive:
            archive.unlink(missing_ok=True)
    logger.info("installed %s", target)
    return target


def _unpack(archive: Path, target: Path, progress: ProgressReporter | None) -> None:
    """Unpack into a staging folder beside ``target``; rename it only when it looks like a dataset."""
    with staged_folder(target) as staging:
        extract_archive(archive, staging, progress=progress)
        if not (staging / "dataset.json").is_file():
            raise InvalidInputError("archive holds no dataset.json at its top level (after stripping "
                                    "its single top folder); not a Decathlon-style dataset", path=archive)
