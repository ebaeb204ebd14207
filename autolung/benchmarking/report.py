"""Write the benchmark report: ``report.md``, ``report.csv``, ``report.json`` and ``dice_boxplot.png``."""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autolung import __version__
from autolung.benchmarking import compare
from autolung.benchmarking.figure import write_dice_boxplot
from autolung.benchmarking.rows import BASE_COLUMNS, build_rows
from autolung.evaluation.report import json_safe
from autolung.utils.atomic import write_json_atomic, write_text_atomic

REPORT_FORMAT = "autolung-benchmark-report"
REPORT_VERSION = 1
FIGURE_NAME = "dice_boxplot.png"


@dataclass
class Comparisons:
    """What to put side by side with this report's numbers.

    Attributes:
        other: another benchmark report (``compare.load_report``), or None.
        other_source: where it was read from (shown in the report).
        nnunet: ``nnunet_results.read_nnunet_results`` output, or None.
        nnunet_source: the nnU-Net results folder.
        nnunet_names: explicit ``{our dataset: nnU-Net dataset}``.
    """

    other: dict[str, Any] | None = None
    other_source: str = ""
    nnunet: dict[str, dict[str, dict[str, Any]]] | None = None
    nnunet_source: str = ""
    nnunet_names: dict[str, str] = field(default_factory=dict)


def build_report(results: Sequence[dict[str, Any]], settings: dict[str, Any] | None = None,
                 comparisons: Comparisons | None = None) -> dict[str, Any]:
    """Assemble the report: rows with statistics (plus compared columns) and all inputs.

    Args:
        results: dataset results (see :mod:`autolung.benchmarking.collect`).
        settings: how the benchmark was run (recorded as is).
        comparisons: other report / nnU-Net results to add.

    Returns:
        The report dict (what ``report.json`` holds).
    """
    comparisons = comparisons or Comparisons()
    rows = build_rows(results)
    columns = list(BASE_COLUMNS)
    compared: dict[str, Any] = {}
    if comparisons.other is not None:
        compare.add_other_report(rows, comparisons.other)
        columns += [f"{c}_other" for c in compare.OTHER_COLUMNS]
        compared["other"] = comparisons.other_source
    if comparisons.nnunet is not None:
        matched = compare.add_nnunet(rows, comparisons.nnunet, comparisons.nnunet_names)
        columns += list(compare.NNUNET_COLUMNS)
        compared["nnunet"] = {"folder": comparisons.nnunet_source, "datasets": matched}
    return {"format": REPORT_FORMAT, "version": REPORT_VERSION, "autolung_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "settings": settings or {},
            "comparisons": compared, "columns": columns, "rows": rows, "datasets": list(results)}


def write_report(report: dict[str, Any], folder: str | Path) -> dict[str, Path]:
    """Write the four report files into ``folder`` (each atomically).

    Args:
        report: from :func:`build_report`.
        folder: the report folder (created if missing).

    Returns:
        ``{"md", "csv", "json", "figure"}`` paths.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"md": folder / "report.md", "csv": folder / "report.csv", "json": folder / "report.json",
             "figure": folder / FIGURE_NAME}
    write_json_atomic(paths["json"], json_safe(report))
    write_text_atomic(paths["csv"], report_csv(report))
    write_text_atomic(paths["md"], report_markdown(report))
    write_dice_boxplot(report["datasets"], paths["figure"])
    return paths


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return value


def report_csv(report: dict[str, Any]) -> str:
    """One line per dataset x configuration x class; empty cells for undefined values.

    Args:
        report: from :func:`build_report`.

    Returns:
        The CSV text.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=report["columns"], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report["rows"]:
        writer.writerow({column: _csv_value(row.get(column)) for column in report["columns"]})
    return buffer.getvalue()


def _num(value: Any, digits: int = 3) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def _mean_std(row: dict[str, Any], metric: str, digits: int = 3) -> str:
    if not math.isfinite(row[f"{metric}_mean"]):
        return "n/a"
    return f"{_num(row[f'{metric}_mean'], digits)} ± {_num(row[f'{metric}_std'], digits)}"


def _median_iqr(row: dict[str, Any], metric: str) -> str:
    if not math.isfinite(row[f"{metric}_median"]):
        return "n/a"
    return f"{_num(row[f'{metric}_median'])} [{_num(row[f'{metric}_q1'])}, {_num(row[f'{metric}_q3'])}]"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines]
    return out


def _metrics_table(report: dict[str, Any]) -> list[str]:
    other = "other" in report["comparisons"]
    nnunet = "nnunet" in report["comparisons"]
    header = ["Dataset", "Configuration", "Class", "Cases", "Dice mean ± std", "Dice median [IQR]",
              "HD95 mm mean ± std", "NSD mean ± std", "Lesion sensitivity", "FP lesions / case"]
    header += ["Dice (other)", "HD95 (other)", "NSD (other)"] if other else []
    header += ["Dice (nnU-Net)"] if nnunet else []
    lines = []
    for row in report["rows"]:
        name = row["configuration"] + (" *" if row.get("chosen") else "")
        line = [row["dataset"], name, f"{row['class_name']} ({row['class']})", str(row["n_cases"]),
                _mean_std(row, "dice"), _median_iqr(row, "dice"), _mean_std(row, "hd95", 2), _mean_std(row, "nsd"),
                _num(row["lesion_sensitivity"]), _num(row["lesion_fp_per_case"], 2)]
        if other:
            line += [_num(row.get("dice_mean_other")), _num(row.get("hd95_mean_other"), 2),
                     _num(row.get("nsd_mean_other"))]
        if nnunet:
            mean, std = row.get("dice_mean_nnunet"), row.get("dice_std_nnunet")
            line += [f"{_num(mean)} ± {_num(std)}" if _num(mean) != "n/a" else "n/a"]
        lines.append(line)
    return _table(header, lines)


def _configuration_entries(report: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(result["dataset"], name, entry) for result in report["datasets"]
            for name, entry in result.get("configurations", {}).items()]


def _timing_table(report: dict[str, Any]) -> list[str]:
    header = ["Dataset", "Configuration", "Folds", "Epochs", "Training s (all folds)", "Training s / fold",
              "Inference s / case"]
    lines = []
    for dataset, name, entry in _configuration_entries(report):
        folds = entry.get("folds", {})
        times = [f.get("training_time_s") for f in folds.values() if f.get("training_time_s") is not None]
        inference = [f["inference_s_per_case"] for f in folds.values() if f.get("inference_s_per_case") is not None]
        epochs = sorted({str(f.get("epochs")) for f in folds.values() if f.get("epochs") is not None})
        lines.append([dataset, name, " ".join(sorted(folds)) or "-", "/".join(epochs) or "n/a",
                      _num(sum(times) if times else None, 1), _num(sum(times) / len(times) if times else None, 1),
                      _num(sum(inference) / len(inference) if inference else None, 2)])
    return _table(header, lines)


def _plan_table(report: dict[str, Any]) -> list[str]:
    header = ["Dataset", "Configuration", "Spacing (z, y, x) mm", "Patch", "Batch", "Stages", "Features"]
    lines = []
    for dataset, name, entry in _configuration_entries(report):
        plan = entry.get("plan", {})
        lines.append([dataset, name, " x ".join(f"{s:g}" for s in plan.get("spacing", [])),
                      " x ".join(str(p) for p in plan.get("patch_size", [])), str(plan.get("batch_size", "")),
                      str(plan.get("num_stages", "")), ", ".join(str(f) for f in plan.get("features_per_stage", []))])
    return _table(header, lines)


def _choice_table(report: dict[str, Any]) -> list[str]:
    header = ["Dataset", "Chosen", "CV mean foreground Dice", "after postprocessing", "Postprocessing"]
    lines = []
    for result in report["datasets"]:
        best = result.get("best")
        if not best:
            continue
        chosen = "+".join(c.get("configuration", "?") for c in best.get("configurations", []))
        if best.get("partial"):
            chosen += f" (partial cross-validation: {best.get('num_cases', '?')} cases)"
        rules = best.get("postprocessing", {}).get("rules", [])
        text = ", ".join(f"{r.get('label')}: {r.get('method')}" for r in rules) or "none"
        lines.append([result["dataset"], chosen, _num(best.get("mean_foreground_dice")),
                      _num(best.get("mean_foreground_dice_postprocessed")), text])
    return _table(header, lines) if lines else ["No configuration chosen yet."]


def _failures(report: dict[str, Any]) -> list[str]:
    failed = [r for r in report["datasets"] if r.get("failed")]
    if not failed:
        return []
    lines = ["", "## Failures", ""]
    lines += [f"- **{r['dataset']}**, step `{r['failed'].get('step')}`: {r['failed'].get('message')}" for r in failed]
    return lines


def _comparison_notes(report: dict[str, Any]) -> list[str]:
    notes = []
    if "other" in report["comparisons"]:
        notes.append(f"\"(other)\" columns: {report['comparisons']['other']}.")
    if "nnunet" in report["comparisons"]:
        nn = report["comparisons"]["nnunet"]
        pairs = ", ".join(f"{ours} = {theirs}" for ours, theirs in nn["datasets"].items()) or "none matched"
        notes.append(f"nnU-Net column: validation Dice of {nn['folder']} ({pairs}); nnU-Net leaves a class absent "
                     "from reference and prediction out (autolung counts it as Dice 1).")
    return notes


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={'default' if v is None else v}" for k, v in settings.items() if k != "datasets")


def report_markdown(report: dict[str, Any]) -> str:
    """The human-readable report: metrics, timing, planner choices, chosen configuration.

    Args:
        report: from :func:`build_report`.

    Returns:
        Markdown text.
    """
    settings = report.get("settings", {})
    lines = ["# autolung benchmark", "",
             f"autolung {report['autolung_version']}, {report['created']}. "
             f"Datasets: {', '.join(r['dataset'] for r in report['datasets']) or 'none'}.",
             f"Settings: {_settings_text(settings)}." if settings else "",
             "", "## Cross-validation results per class", "",
             "Statistics over validation cases of the trained folds; std is the population standard deviation, "
             "IQR the 25th-75th percentiles. HD95 leaves out cases where one mask is empty. "
             "Lesion sensitivity pools detected reference lesions over cases. `*` marks the chosen configuration.",
             *_comparison_notes(report), ""]
    lines += _metrics_table(report)
    lines += ["", "## Time", "", "Training time from the training logs; inference seconds per case of the "
              "final validation (sliding window with mirroring, restore, write).", ""]
    lines += _timing_table(report)
    lines += ["", "## What the planner chose", ""] + _plan_table(report)
    lines += ["", "## Chosen configuration (find_best_configuration)", ""] + _choice_table(report)
    lines += _failures(report)
    return "\n".join(lines) + "\n"
