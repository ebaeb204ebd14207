"""How a benchmark runs: datasets, configurations, folds and training options."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autolung.training.options import TrainingOptions


@dataclass
class BenchmarkSettings:
    """Everything a benchmark run needs besides the data root and the report folder.

    Attributes:
        datasets: dataset names under ``raw/`` or paths to dataset folders.
        configurations: configurations to train; None takes ``3d_fullres`` for 3D data and ``2d``
            for 2D data. Names the plans lack are skipped.
        folds: folds to train; None takes every fold of ``splits.json``.
        training: training options of every fold (``final_validation`` is forced on, as the
            report is built from the folds' validation predictions).
        num_processes: worker processes for verification, fingerprint and preprocessing.
        nsd_tolerance_mm: NSD tolerance of the evaluation.
    """

    datasets: list[str]
    configurations: list[str] | None = None
    folds: list[int] | None = None
    training: TrainingOptions = field(default_factory=TrainingOptions)
    num_processes: int = 2
    nsd_tolerance_mm: float = 2.0

    @property
    def planner(self) -> str:
        """The planner whose plans are used (from the training options)."""
        return self.training.planner

    def to_json(self) -> dict[str, Any]:
        """The settings recorded in the report.

        Returns:
            A JSON-able dict.
        """
        options = self.training
        return {"datasets": list(self.datasets), "configurations": self.configurations, "folds": self.folds,
                "planner": options.planner, "epochs": options.epochs, "iters_per_epoch": options.iters_per_epoch,
                "time_budget_s": options.time_budget_s, "device": options.device,
                "nsd_tolerance_mm": self.nsd_tolerance_mm}
