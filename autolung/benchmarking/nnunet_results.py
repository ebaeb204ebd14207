"""Read an nnU-Net v2 results folder: per-case validation Dice of every trained configuration.

nnU-Net v2 writes ``<results>/Dataset<NNN>_<Name>/<trainer>__<plans>__<config>/fold_<k>/validation/summary.json``::

    {"foreground_mean": {"Dice": ...}, "mean": {"1": {"Dice": ..., "IoU": ...}, ...},
     "metric_per_case": [{"metrics": {"1": {"Dice": ...}}, "reference_file": ..., "prediction_file": ...}]}

Region keys are written as ``"(1, 2)"``; they become autolung's ``"1+2"``. nnU-Net's Dice is NaN
for a class absent from both reference and prediction (autolung counts it as 1); NaN cases are
left out of the statistics and counted as undefined.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from autolung.benchmarking.stats import describe
from autolung.errors import InvalidInputError
from autolung.io.formats import strip_ending

logger = logging.getLogger(__name__)

_PREFIX = re.compile(r"^(dataset|task)\d*_", re.IGNORECASE)
DEFAULT_TRAINER = "nnUNetTrainer"
DEFAULT_PLANS = "nnUNetPlans"


def normalise_dataset_name(name: str) -> str:
    """``Dataset004_Hippocampus``, ``Task04_Hippocampus`` and ``hippocampus`` all give ``hippocampus``.

    Args:
        name: a dataset folder name.

    Returns:
        The name without a Dataset/Task prefix and number, in lower case.
    """
    return _PREFIX.sub("", name.strip()).lower()


def class_key(key: str) -> str:
    """nnU-Net's region key ``"(1, 2)"`` as autolung's ``"1+2"``; plain labels unchanged.

    Args:
        key: a class key of an nnU-Net summary.

    Returns:
        The autolung key.
    """
    numbers = re.findall(r"-?\d+", key)
    return "+".join(numbers) if key.strip().startswith("(") and numbers else key.strip()


def read_summary(path: Path) -> list[dict[str, Any]]:
    """Per-case Dice of one nnU-Net ``summary.json``.

    Args:
        path: the summary file.

    Returns:
        ``[{"case_id", "dice": {class_key: value}}]``; from ``metric_per_case``, or one pseudo
        case holding the per-class means when the file has no per-case list.

    Raises:
        InvalidInputError: when the file is unreadable or has neither key.
    """
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))  # json accepts nnU-Net's NaN literals
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read nnU-Net summary ({exc})", path=path) from None
    if not isinstance(payload, dict):
        raise InvalidInputError("nnU-Net summary is not a JSON object", path=path)
    per_case = payload.get("metric_per_case")
    if isinstance(per_case, list) and per_case:
        return [_case_entry(item, index, path) for index, item in enumerate(per_case)]
    means = payload.get("mean")
    if isinstance(means, dict) and means:
        logger.warning("%s has no metric_per_case; using its per-class means as one value per fold", path)
        return [{"case_id": f"{path.parent.parent.name}_mean", "dice": _dice_of(means)}]
    raise InvalidInputError("nnU-Net summary has neither \"metric_per_case\" nor \"mean\"", path=path)


def _case_entry(item: Any, index: int, path: Path) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("metrics"), dict):
        raise InvalidInputError(f"metric_per_case[{index}] has no \"metrics\" object", path=path)
    reference = item.get("reference_file") or item.get("prediction_file") or f"case_{index}"
    return {"case_id": strip_ending(str(reference)), "dice": _dice_of(item["metrics"])}


def _dice_of(metrics: dict[str, Any]) -> dict[str, float | None]:
    dice: dict[str, float | None] = {}
    for key, values in metrics.items():
        if isinstance(values, dict) and "Dice" in values:
            value = values["Dice"]
            dice[class_key(key)] = float(value) if isinstance(value, (int, float)) else None
    return dice


def read_configuration(folder: Path) -> dict[str, Any]:
    """Pool the validation summaries of every fold of one ``<trainer>__<plans>__<config>`` folder.

    Args:
        folder: the configuration's results folder.

    Returns:
        ``{"folder", "trainer", "plans", "configuration", "folds", "cases", "per_class"}`` where
        ``per_class`` maps class keys to :func:`describe` statistics of the per-case Dice.
    """
    trainer, plans, configuration = folder.name.split("__", 2)
    folds, cases = [], []
    for summary in sorted(folder.glob("fold_*/validation/summary.json")):
        fold = summary.parent.parent.name.removeprefix("fold_")
        folds.append(fold)
        cases.extend({**case, "fold": fold} for case in read_summary(summary))
    keys = sorted({key for case in cases for key in case["dice"]}, key=_sort_key)
    per_class = {key: describe([case["dice"].get(key) for case in cases]) for key in keys}
    return {"folder": str(folder), "trainer": trainer, "plans": plans, "configuration": configuration,
            "folds": folds, "cases": cases, "per_class": per_class}


def _sort_key(key: str) -> tuple[int, str]:
    first = key.split("+")[0]
    return (int(first) if first.lstrip("-").isdigit() else 1 << 30, key)


def _dataset_folders(results_folder: Path) -> list[Path]:
    if _PREFIX.match(results_folder.name) and any(results_folder.glob("*__*__*")):
        return [results_folder]  # the folder of one dataset was given
    return sorted(p for p in results_folder.iterdir() if p.is_dir() and _PREFIX.match(p.name))


def read_nnunet_results(results_folder: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Every dataset and configuration with validation summaries in an nnU-Net v2 results folder.

    Args:
        results_folder: ``nnUNet_results`` (holding ``Dataset*/``) or one ``Dataset*`` folder.

    Returns:
        ``{dataset folder name: {configuration folder name: read_configuration(...)}}``.

    Raises:
        InvalidInputError: when the folder is missing or holds no validation summary.
    """
    results_folder = Path(results_folder)
    if not results_folder.is_dir():
        raise InvalidInputError("nnU-Net results folder not found", path=results_folder)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for dataset in _dataset_folders(results_folder):
        configurations = {c.name: read_configuration(c) for c in sorted(dataset.glob("*__*__*")) if c.is_dir()}
        configurations = {name: entry for name, entry in configurations.items() if entry["folds"]}
        if configurations:
            found[dataset.name] = configurations
    if not found:
        raise InvalidInputError("no nnU-Net validation summaries found "
                                "(Dataset*/<trainer>__<plans>__<config>/fold_*/validation/summary.json)",
                                path=results_folder)
    return found


def parse_name_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["A=Dataset004_Hippocampus"]`` as ``{"A": "Dataset004_Hippocampus"}``.

    Args:
        items: ``ours=theirs`` strings.

    Returns:
        The mapping.

    Raises:
        InvalidInputError: for an item without ``=``.
    """
    mapping = {}
    for item in items:
        ours, sep, theirs = item.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise InvalidInputError(f"`nnunet_names` item {item!r} must look like OURS=Dataset004_Name")
        mapping[ours.strip()] = theirs.strip()
    return mapping


def match_dataset(name: str, available: Iterable[str], mapping: dict[str, str] | None = None) -> str | None:
    """The nnU-Net dataset that corresponds to ours: explicit mapping first, else the same bare name.

    Args:
        name: our dataset name.
        available: nnU-Net dataset folder names.
        mapping: explicit ``{ours: theirs}`` pairs.

    Returns:
        The nnU-Net dataset name, or None when none matches.
    """
    available = list(available)
    if mapping and name in mapping:
        wanted = mapping[name]
        return wanted if wanted in available else None
    bare = normalise_dataset_name(name)
    matches = [other for other in available if normalise_dataset_name(other) == bare]
    if len(matches) > 1:
        logger.warning("several nnU-Net datasets match %s (%s); using %s", name, ", ".join(matches), matches[0])
    return matches[0] if matches else None


def match_configuration(configuration: str, configurations: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The nnU-Net results of the same configuration name, preferring the default trainer and plans.

    Args:
        configuration: our configuration name, e.g. ``"3d_fullres"``.
        configurations: one dataset's entry of :func:`read_nnunet_results`.

    Returns:
        The chosen :func:`read_configuration` entry, or None.
    """
    candidates = [entry for entry in configurations.values() if entry["configuration"] == configuration]
    candidates.sort(key=lambda e: (e["trainer"] != DEFAULT_TRAINER, e["plans"] != DEFAULT_PLANS, e["folder"]))
    return candidates[0] if candidates else None
