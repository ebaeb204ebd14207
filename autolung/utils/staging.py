"""Whole folders written atomically: build in a staging folder beside the target, then rename.

A reader (or a later run) therefore sees either no output folder, the old one, or the complete
new one; never half of a dataset, even when the process is killed mid-way.

Staging folders carry the writer's process id. A process killed outright (SIGKILL, power loss)
cannot clean up, so the next staged write beside the same target removes the staging folders of
writers that are gone, and puts back a previous copy that a killed swap had moved aside.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from autolung.errors import InvalidInputError

logger = logging.getLogger(__name__)

# Hidden names, so tools listing raw/ never mistake a staging folder for a dataset.
STAGING_PREFIX = ".autolung-staging-"
_OLD_PREFIX = ".autolung-replaced-"


def check_output_folder(target: Path, inputs: tuple[Path, ...] = (), overwrite: bool = False) -> None:
    """Refuse an output folder that would clobber data or the inputs.

    Args:
        target: the folder about to be written.
        inputs: folders or files read to make it; the target may not equal, contain, or lie inside any.
        overwrite: allow replacing an existing non-empty ``target``.

    Raises:
        InvalidInputError: when ``target`` is a file, is non-empty without ``overwrite``, or
            overlaps an input.
    """
    resolved = target.resolve()
    for source in inputs:
        source_resolved = source.resolve()
        if resolved == source_resolved or resolved in source_resolved.parents:
            raise InvalidInputError(f"output folder equals or contains the input {source_resolved}", path=target)
        if source_resolved in resolved.parents:
            raise InvalidInputError(f"output folder lies inside the input {source_resolved}", path=target)
    if target.exists() and not target.is_dir():
        raise InvalidInputError("output exists and is not a folder", path=target)
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise InvalidInputError("output folder exists and is not empty (set `overwrite` to replace it)",
                                path=target)


@contextlib.contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; move it onto ``target`` when the block succeeds.

    An existing ``target`` is replaced only once the new folder is complete (callers decide
    beforehand, with :func:`check_output_folder`, whether replacing is allowed). On an exception
    the staging folder is deleted and ``target`` is left as it was.

    Args:
        target: the final folder path.

    Returns:
        A context manager yielding the staging folder to fill.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted(target)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-{target.name}-", dir=target.parent))
    try:
        yield staging
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``, moving an existing ``target`` aside first and deleting it after."""
    # mkdtemp creates 0700; the result is a normal user folder.
    os.chmod(staging, 0o755)
    if not target.exists():
        os.replace(staging, target)
        return
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
        os.replace(staging, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{_OLD_PREFIX}{os.getpid()}-{target.name}-", dir=target.parent))
    old.rmdir()
    os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        # Put the previous folder back so a failed swap loses nothing.
        os.replace(old, target)
        raise
    logger.debug("replaced %s; removing the previous copy", target)
    shutil.rmtree(old, ignore_errors=True)


def _dead_leftovers(parent: Path, prefix: str, name: str) -> list[Path]:
    """Folders ``<prefix><pid>-<name>-*`` in ``parent`` whose writing process no longer runs."""
    from autolung.utils.locking import process_alive

    # mkdtemp appends 8 random characters; matching them exactly keeps "a" from claiming "a-b"'s.
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)-{re.escape(name)}-[a-z0-9_]{{8}}")
    found = []
    for leftover in sorted(parent.glob(f"{prefix}*")):
        match = pattern.fullmatch(leftover.name)
        if match and leftover.is_dir() and not process_alive(int(match.group(1))):
            found.append(leftover)
    return found


def recover_interrupted(target: str | Path) -> list[Path]:
    """Clean up after staged writes of ``target`` whose process was killed.

    A previous copy moved aside by a swap that never finished is renamed back when ``target`` is
    missing (so killing a replacement never loses the old folder); staging folders of dead
    writers are deleted. Folders of writers that still run are left alone.

    Args:
        target: the final folder path of a staged write.

    Returns:
        The leftover folders that were removed or restored.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    handled = []
    for old in _dead_leftovers(target.parent, _OLD_PREFIX, target.name):
        if not target.exists():
            logger.warning("restoring %s from %s, left by a replacement that was interrupted", target, old.name)
            os.replace(old, target)
        else:
            shutil.rmtree(old, ignore_errors=True)
        handled.append(old)
    for staging in _dead_leftovers(target.parent, STAGING_PREFIX, target.name):
        logger.warning("removing %s, left by a write of %s that was interrupted", staging.name, target)
        shutil.rmtree(staging, ignore_errors=True)
        handled.append(staging)
    return handled
