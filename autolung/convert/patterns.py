"""File-name patterns such as ``{case}_img.nii.gz`` or ``masks/{case}.png``: matching and formatting."""
from __future__ import annotations

import re
from pathlib import Path

from autolung.errors import InvalidInputError
from autolung.io.formats import image_ending

CASE = "{case}"
CHANNEL = "{channel}"
# A case id becomes part of file names in the dataset: no folders, no hidden names.
_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
# Walking a huge tree by mistake (e.g. ``-i /``) should fail fast rather than hang.
MAX_FILES = 200_000


def check_pattern(pattern: str, allow_channel: bool = False) -> None:
    """Refuse patterns without exactly one ``{case}``, with unknown placeholders, or leaving the folder.

    Args:
        pattern: the pattern as given by the user.
        allow_channel: whether ``{channel}`` may appear (export only).

    Raises:
        InvalidInputError: naming the pattern and the problem.
    """
    if pattern.count(CASE) != 1:
        raise InvalidInputError("pattern must contain {case} exactly once", path=pattern)
    rest = pattern.replace(CASE, "").replace(CHANNEL, "") if allow_channel else pattern.replace(CASE, "")
    if "{" in rest or "}" in rest:
        allowed = "{case} and {channel}" if allow_channel else "{case}"
        raise InvalidInputError(f"pattern may only use the placeholders {allowed}", path=pattern)
    parts = Path(pattern).parts
    if Path(pattern).is_absolute() or ".." in parts:
        raise InvalidInputError("pattern must be a path relative to the folder, without '..'", path=pattern)
    if image_ending(pattern.replace(CASE, "x").replace(CHANNEL, "0")) is None:
        raise InvalidInputError("pattern must end with a supported image ending such as .nii.gz or .png",
                                path=pattern)


def pattern_ending(pattern: str) -> str:
    """The image ending of a pattern (``"{case}_img.nii.gz"`` -> ``".nii.gz"``)."""
    ending = image_ending(pattern.replace(CASE, "x").replace(CHANNEL, "0"))
    if ending is None:
        raise InvalidInputError("pattern has no supported image ending", path=pattern)
    return ending


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching relative POSIX paths of the pattern, capturing ``case``."""
    before, after = pattern.split(CASE)
    return re.compile(re.escape(before) + r"(?P<case>[^/]+?)" + re.escape(after))


def format_pattern(pattern: str, case_id: str, channel: int | None = None) -> str:
    """Fill in the pattern for one case (and channel)."""
    filled = pattern.replace(CASE, case_id)
    return filled.replace(CHANNEL, str(channel)) if channel is not None else filled


def relative_files(folder: Path) -> list[str]:
    """Every file under ``folder`` as a sorted relative POSIX path, hidden entries skipped.

    Raises:
        InvalidInputError: when ``folder`` is missing or holds more than :data:`MAX_FILES` files.
    """
    if not folder.is_dir():
        raise InvalidInputError("input folder not found", path=folder)
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        found.append(relative.as_posix())
        if len(found) > MAX_FILES:
            raise InvalidInputError(f"more than {MAX_FILES} files below the input folder; "
                                    "point `input_folder` at the folder holding the pairs", path=folder)
    return sorted(found)


def match_cases(files: list[str], pattern: str, exclude: re.Pattern[str] | None = None) -> dict[str, str]:
    """Case id -> relative path for every file matching ``pattern``.

    Args:
        files: relative paths (from :func:`relative_files`).
        pattern: the pattern with ``{case}``.
        exclude: files matching this regex are skipped (the mask pattern, when the image
            pattern would also match mask files, e.g. ``{case}.nii.gz`` vs ``{case}_mask.nii.gz``).

    Returns:
        Case id -> relative path, sorted by case id.

    Raises:
        InvalidInputError: for a case id that is unusable as a file name.
    """
    regex = pattern_regex(pattern)
    cases: dict[str, str] = {}
    for relative in files:
        match = regex.fullmatch(relative)
        if match is None or (exclude is not None and exclude.fullmatch(relative)):
            continue
        case_id = match["case"]
        if not _CASE_ID.match(case_id):
            raise InvalidInputError(f"case id {case_id!r} (from {relative}) may hold only letters, digits "
                                    "and '_', '-', '.', '+'", path=pattern)
        cases[case_id] = relative
    return dict(sorted(cases.items()))
