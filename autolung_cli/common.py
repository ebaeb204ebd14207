"""Options and helpers shared by the CLI command modules."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autolung.paths import DataRoot, resolve_dataset_folder, resolve_root

PLANNER_HELP = ("Planner (entry point autolung.planners). auto: the plan that trains best on the --device in the "
                "--time-budget (the GPU plan on a GPU; on a CPU sized by a measured throughput probe); "
                "default: the GPU-sized plan; cpu: the slim CPU preset.")
TRAINED_PLANNER_HELP = "Planner of the plans or trained configuration; default: the only one the dataset has."

ROOT_HELP = "Data root holding raw/, preprocessed/ and results/ (default: $AUTOLUNG_ROOT, else ~/autolung_data)."


def root_option() -> Optional[Path]:
    return typer.Option(None, "--root", help=ROOT_HELP)


def dataset_option() -> str:
    return typer.Option(..., "-d", "--dataset", help="Dataset folder name under raw/, or a path to a dataset folder.")


def data_root(root: Optional[Path]) -> DataRoot:
    """Resolve the data root from --root or the environment (only the CLI reads the environment)."""
    return resolve_root(root)


def dataset_folder(dataset: str, root: DataRoot) -> Path:
    return resolve_dataset_folder(dataset, root)


def dataset_name(dataset: str, root: DataRoot) -> str:
    """The dataset's name: its folder name (used under preprocessed/ and results/)."""
    return resolve_dataset_folder(dataset, root).name
