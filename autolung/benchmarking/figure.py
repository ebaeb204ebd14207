"""``dice_boxplot.png``: per-case Dice per dataset, configuration and class (matplotlib, Agg)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autolung.benchmarking.rows import class_keys, per_case_values
from autolung.provenance import figure_metadata
from autolung.utils.atomic import atomic_path


def _boxes(result: dict[str, Any]) -> tuple[list[list[float]], list[str]]:
    data, names = [], []
    several = len(result.get("configurations", {})) > 1
    for configuration, entry in result.get("configurations", {}).items():
        cases = entry.get("cases", [])
        for key in class_keys(cases):
            values = [v for v in per_case_values(cases, key, "dice") if math.isfinite(v)]
            name = result.get("labels", {}).get(key, key)
            data.append(values)
            names.append(f"{configuration}\n{name}" if several else name)
    return data, names


def write_dice_boxplot(results: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Draw one panel per dataset with a box of per-case Dice per configuration and class.

    Args:
        results: dataset results (see :mod:`autolung.benchmarking.collect`).
        path: the PNG to write (atomically).

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    panels = [r for r in results if any(e.get("cases") for e in r.get("configurations", {}).values())] or [None]
    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.8 * rows), squeeze=False)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    for axis, result in zip(axes.flat, panels):
        _draw_panel(axis, result)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, metadata=figure_metadata())
    plt.close(figure)
    return path


def _draw_panel(axis: Any, result: dict[str, Any] | None) -> None:
    if result is None:
        axis.text(0.5, 0.5, "no evaluated cases", ha="center", va="center")
        axis.set_axis_off()
        return
    data, names = _boxes(result)
    positions = list(range(1, len(data) + 1))
    shown = [(values, position) for values, position in zip(data, positions) if values]
    if shown:
        axis.boxplot([v for v, _ in shown], positions=[p for _, p in shown], widths=0.6)
    axis.set_xticks(positions)
    axis.set_xticklabels(names, fontsize=8)
    axis.set_xlim(0.4, len(data) + 0.6)
    axis.set_ylim(-0.02, 1.02)
    axis.set_ylabel("Dice per case")
    axis.set_title(result["dataset"], fontsize=10)
    axis.grid(axis="y", alpha=0.3)
