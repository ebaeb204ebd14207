"""Five-fold cross-validation splits, seeded and saved beside the preprocessed data.

A ``splits.json`` that already exists (for example written by the user) is respected as it is,
as long as it names only known cases.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from autolung.errors import AutolungError, InvalidInputError
from autolung.utils.atomic import write_json_atomic

logger = logging.getLogger(__name__)

NUM_FOLDS = 5
SPLIT_SEED = 12345
# With fold "all" every case trains; a few of them still give a validation signal.
ALL_FOLD_VALIDATION_CASES = 5


def make_splits(case_ids: list[str], num_folds: int = NUM_FOLDS, seed: int = SPLIT_SEED) -> list[dict[str, list[str]]]:
    """Shuffle cases with ``seed`` and cut them into ``num_folds`` folds.

    Args:
        case_ids: all training case identifiers.
        num_folds: number of folds (reduced to the case count when there are fewer cases).
        seed: shuffling seed, so every machine produces the same splits.

    Returns:
        One ``{"train": [...], "val": [...]}`` per fold, each list sorted.
    """
    cases = sorted(case_ids)
    if len(cases) < 2:
        raise AutolungError(f"cross-validation needs at least 2 cases, found {len(cases)}")
    folds = min(num_folds, len(cases))
    order = np.random.default_rng(seed).permutation(len(cases))
    chunks = np.array_split(order, folds)
    splits = []
    for chunk in chunks:
        val = sorted(cases[i] for i in chunk)
        train = sorted(set(cases) - set(val))
        splits.append({"train": train, "val": val})
    return splits


def load_or_create_splits(path: Path, case_ids: list[str], seed: int = SPLIT_SEED) -> list[dict[str, list[str]]]:
    """Read ``path`` when it exists (user splits are respected), else create and save splits.

    Args:
        path: ``data_root.splits_file(dataset)``.
        case_ids: the preprocessed cases.
        seed: seed for newly created splits.

    Returns:
        The list of folds.

    Raises:
        InvalidInputError: when an existing file is malformed or names unknown cases.
    """
    if not path.exists():
        splits = make_splits(case_ids, seed=seed)
        write_json_atomic(path, splits)
        logger.info("created %d-fold splits in %s", len(splits), path)
        return splits
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read splits ({exc})", path=path) from None
    _check_splits(splits, set(case_ids), path)
    return splits


def _check_splits(splits: object, known: set[str], path: Path) -> None:
    if not isinstance(splits, list) or not splits:
        raise InvalidInputError("splits must be a non-empty list of {\"train\": [...], \"val\": [...]}", path=path)
    for index, fold in enumerate(splits):
        if not (isinstance(fold, dict) and isinstance(fold.get("train"), list) and isinstance(fold.get("val"), list)):
            raise InvalidInputError(f"fold {index} must have 'train' and 'val' lists", path=path)
        unknown = sorted((set(fold["train"]) | set(fold["val"])) - known)
        if unknown:
            raise InvalidInputError(f"fold {index} names cases that are not preprocessed: {unknown[:5]}", path=path)


def fold_cases(splits: list[dict[str, list[str]]], fold: int | str, case_ids: list[str]) -> tuple[list[str], list[str]]:
    """Training and validation cases of ``fold``.

    Args:
        splits: folds from :func:`load_or_create_splits`.
        fold: a fold index, or "all" (train on every case, validate on a few of them).
        case_ids: all preprocessed cases (used for "all").

    Returns:
        ``(train_cases, val_cases)``.
    """
    if fold == "all":
        cases = sorted(case_ids)
        return cases, cases[:ALL_FOLD_VALIDATION_CASES]
    index = int(fold)
    if not 0 <= index < len(splits):
        raise AutolungError(f"fold {index} does not exist; the splits have folds 0..{len(splits) - 1}")
    return list(splits[index]["train"]), list(splits[index]["val"])


def parse_fold(text: str) -> int | str:
    """``"0"``..``"4"`` to an int, ``"all"`` kept as is.

    Args:
        text: the ``-f`` value.

    Returns:
        The fold index or "all".
    """
    if text.strip().lower() == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise AutolungError(f"fold must be a number or 'all', got {text!r}") from None
