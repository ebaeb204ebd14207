"""Side-by-side columns: another autolung benchmark report, or nnU-Net v2 validation results."""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autolung.benchmarking import nnunet_results
from autolung.errors import InvalidInputError

logger = logging.getLogger(__name__)

REPORT_JSON = "report.json"
# Columns copied from the other report, each as "<column>_other".
OTHER_COLUMNS = ("dice_mean", "dice_std", "dice_median", "hd95_mean", "nsd_mean", "lesion_sensitivity",
                 "lesion_fp_per_case", "training_time_per_fold_s", "inference_s_per_case")
NNUNET_COLUMNS = ("dice_mean_nnunet", "dice_std_nnunet", "dice_median_nnunet", "n_cases_nnunet", "nnunet_folder")


def load_report(path: str | Path) -> dict[str, Any]:
    """Read another benchmark's ``report.json`` (the file, or the report folder holding it).

    Args:
        path: a report folder or its ``report.json``.

    Returns:
        The report.

    Raises:
        InvalidInputError: when missing or not a benchmark report.
    """
    path = Path(path)
    file = path / REPORT_JSON if path.is_dir() else path
    if not file.is_file():
        raise InvalidInputError("no benchmark report found (expected a report folder or its report.json)", path=file)
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read benchmark report ({exc})", path=file) from None
    if not isinstance(report, dict) or not isinstance(report.get("rows"), list):
        raise InvalidInputError("not an autolung benchmark report (no \"rows\" list)", path=file)
    return report


def _row_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (str(row.get("dataset")), str(row.get("configuration")), str(row.get("class")))


def add_other_report(rows: Sequence[dict[str, Any]], other: dict[str, Any]) -> int:
    """Add the other report's values as ``<column>_other`` to rows of the same dataset, configuration and class.

    Rows without a counterpart get NaN in those columns.

    Args:
        rows: this report's rows (changed in place).
        other: the other report (:func:`load_report`).

    Returns:
        How many rows found a counterpart.
    """
    theirs = {_row_key(row): row for row in other["rows"]}
    matched = 0
    for row in rows:
        counterpart = theirs.get(_row_key(row))
        matched += counterpart is not None
        for column in OTHER_COLUMNS:
            value = counterpart.get(column) if counterpart else None
            row[f"{column}_other"] = math.nan if value is None else value
    if rows and not matched:
        logger.warning("the compared report shares no dataset/configuration/class with this one")
    return matched


def add_nnunet(rows: Sequence[dict[str, Any]], results: dict[str, dict[str, dict[str, Any]]],
               name_mapping: dict[str, str] | None = None) -> dict[str, str]:
    """Add nnU-Net's per-class Dice (mean, std, median over its validation cases) to matching rows.

    Args:
        rows: this report's rows (changed in place).
        results: :func:`nnunet_results.read_nnunet_results` output.
        name_mapping: explicit ``{our dataset: nnU-Net dataset}``.

    Returns:
        ``{our dataset: nnU-Net dataset}`` for the datasets that matched.
    """
    matched: dict[str, str] = {}
    for row in rows:
        theirs = nnunet_results.match_dataset(row["dataset"], results, name_mapping)
        entry = nnunet_results.match_configuration(row["configuration"], results[theirs]) if theirs else None
        stats = entry["per_class"].get(row["class"]) if entry else None
        if stats is not None:
            matched[row["dataset"]] = theirs
        row["dice_mean_nnunet"] = stats["mean"] if stats else math.nan
        row["dice_std_nnunet"] = stats["std"] if stats else math.nan
        row["dice_median_nnunet"] = stats["median"] if stats else math.nan
        row["n_cases_nnunet"] = stats["n"] + stats["n_undefined"] if stats else 0
        row["nnunet_folder"] = Path(entry["folder"]).name if entry and stats else ""
    for dataset in sorted({row["dataset"] for row in rows} - set(matched)):
        logger.warning("no nnU-Net results match dataset %s (map it with `nnunet_names` %s=DatasetXXX_Name)",
                       dataset, dataset)
    return matched
