"""Reading ``dataset.json`` and checking its fields; every error names dataset.json and the problem."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autolung.errors import InvalidInputError
from autolung.paths import ensure_inside

DATASET_JSON = "dataset.json"

_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def read_dataset_json(folder: Path) -> dict[str, Any]:
    """Parse ``<folder>/dataset.json``.

    Args:
        folder: the dataset folder.

    Returns:
        The parsed object.

    Raises:
        InvalidInputError: missing folder or file, invalid JSON, or not a JSON object.
    """
    if not folder.is_dir():
        raise InvalidInputError("dataset folder not found", path=folder)
    path = folder / DATASET_JSON
    if not path.is_file():
        raise InvalidInputError("dataset.json not found", path=path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", path=path) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read dataset.json: {exc}", path=path) from exc
    if not isinstance(payload, dict):
        raise InvalidInputError(f"must hold a JSON object, not {type(payload).__name__}", path=path)
    return payload


def require(payload: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    """``payload[key]``, which must exist and be of type ``kind``.

    Args:
        payload: the parsed dataset.json (or a part of it).
        key: the key.
        kind: the expected type (``bool`` never passes as ``int``).
        path: dataset.json, for messages.

    Returns:
        The value.

    Raises:
        InvalidInputError: missing key or wrong type.
    """
    if key not in payload:
        raise InvalidInputError(f"missing key {key!r}", path=path)
    value = payload[key]
    if not is_of_type(value, kind):
        raise InvalidInputError(f"{key!r} must be {_TYPE_NAMES.get(kind, kind.__name__)}, "
                                f"got {type(value).__name__}", path=path)
    return value


def is_of_type(value: Any, kind: type) -> bool:
    """isinstance, except that a bool is not an int (JSON ``true`` is no label value)."""
    if kind is int and isinstance(value, bool):
        return False
    return isinstance(value, kind)


def channel_list(mapping: dict[str, Any], key: str, path: Path) -> list[str]:
    """Channel names in order from ``{"0": "CT", "1": "PET"}``.

    Args:
        mapping: the ``modality`` / ``channel_names`` object.
        key: its key in dataset.json, for messages.
        path: dataset.json.

    Returns:
        The names, channel 0 first.

    Raises:
        InvalidInputError: empty, keys not 0..n-1, or names not strings.
    """
    if not mapping:
        raise InvalidInputError(f"{key!r} declares no channels", path=path)
    indices = {}
    for index, name in mapping.items():
        if not str(index).isdigit() or not isinstance(name, str):
            raise InvalidInputError(f"{key!r} must map channel numbers to names, got {index!r}: {name!r}", path=path)
        indices[int(index)] = name
    if sorted(indices) != list(range(len(indices))):
        raise InvalidInputError(f"{key!r} channel numbers must be 0..{len(indices) - 1}, got {sorted(indices)}",
                                path=path)
    return [indices[i] for i in range(len(indices))]


def entry_path(folder: Path, relative: Any, what: str, path: Path) -> Path:
    """Resolve a path written in dataset.json, refusing ones that leave the dataset folder.

    Args:
        folder: the dataset folder.
        relative: the path as written (``"./imagesTr/x.nii.gz"``).
        what: what the path is, for messages (``"training[3] image"``).
        path: dataset.json.

    Returns:
        The resolved path inside ``folder``.

    Raises:
        InvalidInputError: not a string, or escaping the folder (``..``, absolute, links).
    """
    if not isinstance(relative, str) or not relative.strip():
        raise InvalidInputError(f"{what} path must be a non-empty string, got {relative!r}", path=path)
    try:
        return ensure_inside(folder, Path(relative), what=f"{what} path")
    except InvalidInputError as exc:
        raise InvalidInputError(exc.problem, path=path) from exc
