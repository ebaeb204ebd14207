"""Unpack an untrusted dataset tar into a folder, refusing anything that could escape it.

Only regular files and folders are unpacked. Links, devices, FIFOs, absolute paths and ``..``
make the whole archive refused, because a dataset never needs them and they are the usual way a
hostile archive writes outside its folder. The single top-level folder (``Task06_Lung/``) is
stripped, and macOS metadata (``._*``, ``__MACOSX/``, ``.DS_Store``) is skipped.
"""
from __future__ import annotations

import logging
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from autolung.errors import InvalidInputError, UnsafeFileError
from autolung.progress import ProgressReporter, reporter, track

logger = logging.getLogger(__name__)

_MACOS_NAMES = ("__MACOSX", ".DS_Store")


def _is_macos_metadata(parts: tuple[str, ...]) -> bool:
    return any(part.startswith("._") or part in _MACOS_NAMES for part in parts)


def _member_parts(archive: Path, member: tarfile.TarInfo) -> tuple[str, ...]:
    """The member's path components, refusing absolute paths and ``..``."""
    name = member.name.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        raise UnsafeFileError(f"archive member {member.name!r} has an absolute path", path=archive)
    parts = tuple(part for part in path.parts if part not in ("", "."))
    if ".." in parts:
        raise UnsafeFileError(f"archive member {member.name!r} points outside the folder ('..')", path=archive)
    return parts


def _check_member_type(archive: Path, member: tarfile.TarInfo) -> None:
    if member.issym() or member.islnk():
        raise UnsafeFileError(f"archive member {member.name!r} is a link; links are not unpacked", path=archive)
    if not (member.isfile() or member.isdir()):
        raise UnsafeFileError(f"archive member {member.name!r} is a device, FIFO or other special file",
                              path=archive)


def _common_top_folder(members: list[tuple[tuple[str, ...], tarfile.TarInfo]]) -> str | None:
    """The one top-level folder every member sits in (``Task06_Lung``), or None."""
    tops = {parts[0] for parts, _ in members}
    if len(tops) != 1:
        return None
    top = next(iter(tops))
    # A lone top-level *file* is not a folder to strip.
    return top if all(len(parts) > 1 or member.isdir() for parts, member in members) else None


def _plan_members(archive: Path, tar: tarfile.TarFile) -> list[tuple[tuple[str, ...], tarfile.TarInfo]]:
    """Every member to unpack with its destination parts; raises before anything is written."""
    planned = []
    for member in tar.getmembers():
        parts = _member_parts(archive, member)
        if not parts or _is_macos_metadata(parts):
            continue
        _check_member_type(archive, member)
        planned.append((parts, member))
    top = _common_top_folder(planned)
    if top is not None:
        planned = [(parts[1:], member) for parts, member in planned if len(parts) > 1]
    return planned


def extract_archive(archive: Path, destination: Path,
                    progress: ProgressReporter | None = None) -> int:
    """Unpack ``archive`` (tar, optionally compressed) into the existing folder ``destination``.

    Args:
        archive: the tar file.
        destination: an empty folder (a staging folder; the caller renames it when done).
        progress: receives the "unpack" task, one step per archive member (default: nothing).

    Returns:
        The number of files written.

    Raises:
        UnsafeFileError: for links, special files, absolute or ``..`` paths (nothing is written).
        InvalidInputError: when the file is not a readable tar archive.
    """
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            planned = _plan_members(archive, tar)
            return _write_members(tar, planned, destination, progress)
    except tarfile.TarError as exc:
        raise InvalidInputError(f"not a readable tar archive ({exc})", path=archive) from exc


def _write_members(tar: tarfile.TarFile, planned: list[tuple[tuple[str, ...], tarfile.TarInfo]],
                   destination: Path, progress: ProgressReporter | None) -> int:
    base = destination.resolve()
    written = 0
    for parts, member in track(planned, reporter(progress), "unpack", len(planned)):
        target = base.joinpath(*parts)
        # Belt and braces after the checks on names: the target must stay under the base.
        if base not in target.resolve().parents:
            raise UnsafeFileError(f"archive member {member.name!r} escapes the folder", path=tar.name)
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                raise InvalidInputError(f"cannot read archive member {member.name!r}", path=tar.name)
            with source, open(target, "wb") as handle:
                shutil.copyfileobj(source, handle, length=1 << 20)
            written += 1
    logger.info("unpacked %d files into %s", written, destination)
    return written
