"""Where autolung keeps data: one root holding ``raw/``, ``preprocessed/`` and ``results/``.

The root comes from the ``--root`` option, else the ``AUTOLUNG_ROOT`` environment variable,
else ``~/autolung_data``. Only the CLI reads the environment; library code takes a ``DataRoot``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from autolung.errors import InvalidInputError
from autolung.results import FoldFolder

ROOT_ENV_VAR = "AUTOLUNG_ROOT"
DEFAULT_ROOT = Path("~/autolung_data")


@dataclass(frozen=True)
class DataRoot:
    """The three folders under one data root."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "results"

    def preprocessed_dataset(self, dataset_name: str) -> Path:
        """Folder with fingerprint.json, plans.json, splits.json and one subfolder per configuration."""
        return self.preprocessed / dataset_name

    def results_dataset(self, dataset_name: str) -> Path:
        """Folder with one subfolder per trained configuration."""
        return self.results / dataset_name

    def plans_file(self, dataset_name: str, planner: str = "default") -> Path:
        """``plans.json`` for the default planner, ``plans_<planner>.json`` for any other."""
        name = "plans.json" if planner == "default" else f"plans_{planner}.json"
        return self.preprocessed_dataset(dataset_name) / name

    @staticmethod
    def planner_of_plans_file(path: str | Path) -> str | None:
        """The planner a plans file name belongs to (the inverse of :meth:`plans_file`); None for other names."""
        name = Path(path).name
        if name == "plans.json":
            return "default"
        if not (name.startswith("plans_") and name.endswith(".json")):
            return None
        return name[len("plans_"):-len(".json")] or None

    def fingerprint_file(self, dataset_name: str) -> Path:
        return self.preprocessed_dataset(dataset_name) / "fingerprint.json"

    def splits_file(self, dataset_name: str) -> Path:
        return self.preprocessed_dataset(dataset_name) / "splits.json"

    def preprocessed_configuration(self, dataset_name: str, configuration: str, planner: str = "default") -> Path:
        """Folder of preprocessed cases: ``<config>`` (default planner) or ``<config>__<planner>``."""
        name = configuration if planner == "default" else f"{configuration}__{planner}"
        return self.preprocessed_dataset(dataset_name) / name

    def dataset_source_file(self, dataset_name: str) -> Path:
        """``dataset_source.json``: where the raw dataset was read from (it may live outside raw/)."""
        return self.preprocessed_dataset(dataset_name) / "dataset_source.json"

    def raw_dataset_folder(self, dataset_name: str) -> Path:
        """The raw dataset: ``raw/<name>`` when it exists, else the folder the dataset was
        fingerprinted or preprocessed from (recorded in ``dataset_source.json``), else ``raw/<name>``."""
        under_raw = self.raw / dataset_name
        if under_raw.is_dir():
            return under_raw
        import json

        record = self.dataset_source_file(dataset_name)
        try:
            recorded = Path(json.loads(record.read_text(encoding="utf-8"))["dataset_folder"])
        except (OSError, ValueError, KeyError, TypeError):
            return under_raw
        return recorded if recorded.is_dir() else under_raw

    def record_dataset_source(self, dataset_folder: Path) -> None:
        """Remember where the raw dataset ``dataset_folder`` lives when it is not ``raw/<name>``
        (see :meth:`raw_dataset_folder`); a dataset under raw/ needs no record."""
        from autolung.utils.atomic import write_json_atomic

        folder = Path(dataset_folder).resolve()
        if folder == (self.raw / folder.name).resolve():
            return
        write_json_atomic(self.dataset_source_file(folder.name), {"dataset_folder": str(folder)})

    def training_output(self, dataset_name: str, configuration: str, planner: str = "default") -> Path:
        """Folder holding ``fold_<k>`` subfolders of one configuration and planner."""
        return self.results / dataset_name / f"{configuration}__{planner}"

    def fold_folder(self, dataset_name: str, configuration: str, fold: int | str,
                    planner: str = "default") -> FoldFolder:
        """The :class:`~autolung.results.FoldFolder` ``fold_<k>`` (or ``fold_all``) of one configuration."""
        return FoldFolder.of(self.training_output(dataset_name, configuration, planner), fold)


def resolve_root(option: str | Path | None, environ: dict[str, str] | None = None) -> DataRoot:
    """Pick the data root: explicit option, else $AUTOLUNG_ROOT, else ``~/autolung_data``."""
    environ = os.environ if environ is None else environ
    chosen = option or environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT
    return DataRoot(Path(chosen).expanduser().resolve())


def resolve_dataset_folder(dataset: str | Path, data_root: DataRoot) -> Path:
    """Turn ``-d`` into a dataset folder: an existing folder path, else a name under ``raw/``.

    Raises:
        InvalidInputError: when neither exists.
    """
    candidate = Path(dataset).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    under_raw = data_root.raw / str(dataset)
    if under_raw.is_dir():
        return under_raw.resolve()
    raise InvalidInputError(
        f"no dataset folder found (looked for the path itself and for {under_raw})", path=dataset)


def ensure_inside(base: Path, candidate: Path, what: str = "path") -> Path:
    """Resolve ``candidate`` and refuse it when it escapes ``base`` (``..``, absolute paths, links)."""
    base_resolved = base.resolve()
    resolved = (base / candidate).resolve() if not Path(candidate).is_absolute() else Path(candidate).resolve()
    if resolved != base_resolved and base_resolved not in resolved.parents:
        raise InvalidInputError(f"{what} {str(candidate)!r} escapes the folder {base_resolved}", path=base)
    return resolved
