"""Run a benchmark: every step of every dataset, resumable, then write the report.

Per dataset: verify, plan, preprocess, train the folds (each writes its validation predictions),
gather the cross-validation predictions, evaluate them, choose the best configuration. A step
recorded in ``<report>/state.json`` is not run again, so an interrupted benchmark continues where
it stopped. A failing dataset is recorded and the others still run; the report shows what exists.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolung.benchmarking import steps
from autolung.benchmarking.collect import configuration_result, label_names
from autolung.benchmarking.report import Comparisons, build_report, write_report
from autolung.benchmarking.settings import BenchmarkSettings
from autolung.benchmarking.state import STATE_FILE, BenchmarkState
from autolung.errors import AutolungError
from autolung.paths import DataRoot
from autolung.utils.locking import folder_lock

logger = logging.getLogger(__name__)


@dataclass
class BenchmarkOutcome:
    """What a benchmark run produced.

    Attributes:
        report_dir: the report folder.
        paths: the written report files (``md``, ``csv``, ``json``, ``figure``).
        failures: dataset -> ``{"step", "message"}`` of datasets that did not finish.
    """

    report_dir: Path
    paths: dict[str, Path]
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)


class _StepFailed(Exception):
    """Carries the key of the step that failed up to the dataset loop."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"{step}: {cause}")
        self.step = step
        self.cause = cause


def run_step(state: BenchmarkState, dataset: str, step: str, function: Callable[..., dict[str, Any]],
             *args: Any) -> dict[str, Any]:
    """Run ``function(*args)`` unless ``step`` is recorded as finished; record it when it finishes.

    Args:
        state: the benchmark state.
        dataset: dataset name.
        step: step key.
        function: the step; returns a JSON-able record.
        *args: its arguments.

    Returns:
        The step's record (the stored one when skipped).

    Raises:
        _StepFailed: when the step raises (recorded as the dataset's failure first).
    """
    recorded = state.info(dataset, step)
    if recorded is not None:
        logger.info("%s: %s already done; skipped", dataset, step)
        return recorded
    logger.info("%s: %s", dataset, step)
    try:
        info = function(*args) or {}
    except Exception as exc:
        state.mark_failed(dataset, step, str(exc))
        raise _StepFailed(step, exc) from exc
    state.mark_done(dataset, step, info)
    return info


def _fold_key(folds: list[int]) -> str:
    return "folds_" + "-".join(str(f) for f in folds)


def run_dataset(job: steps.DatasetJob, state: BenchmarkState) -> dict[str, Any]:
    """All steps of one dataset, then its collected result.

    Args:
        job: the dataset job.
        state: the benchmark state.

    Returns:
        The dataset result (see :mod:`autolung.benchmarking.collect`); ``failed`` is set when a
        step failed, and the result then holds what was finished before.
    """
    name = job.name
    state.clear_failure(name)
    configurations: list[str] = []
    folds: dict[str, list[int]] = {}
    best: dict[str, Any] | None = None
    failed = None
    try:
        run_step(state, name, "verify", steps.verify_step, job)
        run_step(state, name, "plan", steps.plan_step, job)
        configurations = _guarded("configurations", steps.choose_configurations, job)
        for configuration in configurations:
            run_step(state, name, f"preprocess/{configuration}", steps.preprocess_step, job, configuration)
        folds = {c: _guarded(f"folds/{c}", steps.fold_list, job, c) for c in configurations}
        _train_all(job, state, folds)
        best = _cross_validate(job, state, folds)
    except _StepFailed as exc:
        failed = {"step": exc.step, "message": str(exc.cause)}
        if isinstance(exc.cause, AutolungError):
            logger.error("%s: %s failed: %s", name, exc.step, exc.cause)
        else:
            logger.error("%s: %s failed", name, exc.step, exc_info=exc.cause)
        if state.failure(name) is None:
            state.mark_failed(name, exc.step, str(exc.cause))
    return collect_result(job, configurations, folds, best, failed)


def _train_all(job: steps.DatasetJob, state: BenchmarkState, folds: dict[str, list[int]]) -> None:
    """Train every fold not yet trained; downstream results are redone when any fold was (re)trained.

    A fold recorded as trained whose validation predictions are gone is trained (or validated)
    again rather than failing later.
    """
    trained = False
    for configuration, fold_list in folds.items():
        for fold in fold_list:
            step = f"train/{configuration}/fold_{fold}"
            if state.is_done(job.name, step) and not steps.fold_has_predictions(job, configuration, fold):
                logger.warning("%s: %s was recorded but its validation predictions are missing; redoing it",
                               job.name, step)
                state.forget(job.name, (step,))
            trained |= not state.is_done(job.name, step)
            run_step(state, job.name, step, steps.train_step, job, configuration, fold)
    if trained and state.forget(job.name, ("cv/", "best/", "evaluate/")):
        logger.info("%s: folds were (re)trained; cross-validation results will be redone", job.name)


def _cross_validate(job: steps.DatasetJob, state: BenchmarkState, folds: dict[str, list[int]]) -> dict[str, Any]:
    """Gather the folds' predictions, choose the best configuration, evaluate each configuration.

    Step keys name the folds, so training more folds later redoes these steps.

    Returns:
        The model choice.
    """
    keys = {c: f"{c}/{_fold_key(f)}" for c, f in folds.items()}
    for configuration, fold_list in folds.items():
        run_step(state, job.name, f"cv/{keys[configuration]}", steps.gather_cv_step, job, configuration, fold_list)
    best = run_step(state, job.name, "best/" + "+".join(keys.values()), steps.best_configuration_step, job,
                    list(folds))
    for configuration in folds:
        run_step(state, job.name, f"evaluate/{keys[configuration]}", steps.evaluate_step, job, configuration)
    return best


def _guarded(step: str, function: Callable[..., Any], *args: Any) -> Any:
    """Run a helper that is no recorded step, reporting its failure like a step's."""
    try:
        return function(*args)
    except Exception as exc:
        raise _StepFailed(step, exc) from exc


def collect_result(job: steps.DatasetJob, configurations: list[str], folds: dict[str, list[int]],
                   best: dict[str, Any] | None, failed: dict[str, Any] | None) -> dict[str, Any]:
    """Read the dataset's results from disk (whatever exists of them).

    Args:
        job: the dataset job.
        configurations: the benchmarked configurations (empty when planning did not finish).
        folds: folds per configuration.
        best: the model choice, or None.
        failed: the failure, or None.

    Returns:
        The dataset result.
    """
    result: dict[str, Any] = {"dataset": job.name, "labels": {}, "failed": failed, "best": best,
                              "configurations": {}}
    if not configurations:
        return result
    plans = job.plans()
    for configuration in configurations:
        fold_folders = {str(f): job.fold_folder(configuration, f) for f in folds.get(configuration, [])
                        if job.fold_folder(configuration, f).is_dir()}
        result["configurations"][configuration] = configuration_result(
            plans.configuration(configuration), fold_folders, job.evaluation_file(configuration))
    keys = sorted({k for entry in result["configurations"].values() for case in entry["cases"]
                   for k in case["metrics"]})
    result["labels"] = label_names(plans, keys)
    return result


def run_benchmark(settings: BenchmarkSettings, data_root: DataRoot, report_dir: str | Path,
                  comparisons: Comparisons | None = None) -> BenchmarkOutcome:
    """Run (or resume) the benchmark and write the report.

    Args:
        settings: datasets, configurations, folds, training options.
        data_root: the data root.
        report_dir: the report folder; its ``state.json`` records finished steps.
        comparisons: another report / nnU-Net results to put side by side.

    Returns:
        The report paths and the datasets that failed.
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    # Two runs resuming the same report would record steps over each other.
    with folder_lock(report_dir, "benchmark"):
        return _run_locked(settings, data_root, report_dir, comparisons)


def _run_locked(settings: BenchmarkSettings, data_root: DataRoot, report_dir: Path,
                comparisons: Comparisons | None) -> BenchmarkOutcome:
    state = BenchmarkState(report_dir / STATE_FILE)
    results = []
    for dataset in settings.datasets:
        try:
            job = steps.make_job(dataset, data_root, settings, report_dir)
        except AutolungError as exc:
            logger.error("%s: %s", dataset, exc)
            results.append({"dataset": str(dataset), "labels": {}, "failed": {"step": "find dataset",
                            "message": str(exc)}, "best": None, "configurations": {}})
            continue
        results.append(run_dataset(job, state))
    report = build_report(results, settings.to_json(), comparisons)
    paths = write_report(report, report_dir)
    failures = {r["dataset"]: r["failed"] for r in results if r.get("failed")}
    return BenchmarkOutcome(report_dir, paths, failures)
