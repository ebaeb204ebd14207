"""The steps of a benchmark on one dataset; each returns a small JSON-able record for ``state.json``.

Every step also checks the disk where that is cheap, so that work done outside the benchmark
(a finished training, preprocessed cases) is reused rather than redone. The pipeline's steps
themselves are :mod:`autolung.api`'s, as for the CLI and the demo.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from autolung import api
from autolung.benchmarking.settings import BenchmarkSettings
from autolung.errors import AutolungError, InvalidInputError
from autolung.paths import DataRoot, resolve_dataset_folder
from autolung.planning.plans import Plans
from autolung.results import FoldFolder
from autolung.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

CV_FOLDER = "cv_predictions"
EVALUATION_FOLDER = "evaluation"
MAX_LISTED_PROBLEMS = 3


@dataclass
class DatasetJob:
    """One dataset of a benchmark.

    Attributes:
        name: dataset name (its folder name, used under preprocessed/ and results/).
        folder: the raw dataset folder.
        data_root: the data root.
        settings: the benchmark settings.
        report_dir: the report folder.
    """

    name: str
    folder: Path
    data_root: DataRoot
    settings: BenchmarkSettings
    report_dir: Path

    def plans(self) -> Plans:
        """The dataset's plans for the benchmark's planner.

        Returns:
            The loaded plans.
        """
        return Plans.load(self.data_root.plans_file(self.name, self.settings.planner))

    def configuration_folder(self, configuration: str) -> Path:
        """``results/<ds>/<config>__<planner>``.

        Args:
            configuration: configuration name.

        Returns:
            The folder.
        """
        return self.data_root.training_output(self.name, configuration, self.settings.planner)

    def fold_folder(self, configuration: str, fold: int) -> Path:
        """``results/<ds>/<config>__<planner>/fold_<k>``.

        Args:
            configuration: configuration name.
            fold: fold index.

        Returns:
            The folder.
        """
        return FoldFolder.of(self.configuration_folder(configuration), fold).path

    def cv_folder(self, configuration: str) -> Path:
        """Where the cross-validation predictions of a configuration are gathered.

        Args:
            configuration: configuration name.

        Returns:
            ``<report>/cv_predictions/<ds>/<config>``.
        """
        return self.report_dir / CV_FOLDER / self.name / configuration

    def evaluation_file(self, configuration: str) -> Path:
        """The evaluation summary JSON of a configuration's cross-validation predictions.

        Args:
            configuration: configuration name.

        Returns:
            ``<report>/evaluation/<ds>/<config>.json``.
        """
        return self.report_dir / EVALUATION_FOLDER / self.name / f"{configuration}.json"


def make_job(dataset: str, data_root: DataRoot, settings: BenchmarkSettings, report_dir: Path) -> DatasetJob:
    """Resolve ``-d`` and make sure the dataset is reachable as ``raw/<name>``.

    Validation and model choice read reference labels from ``raw/<name>/labelsTr``, so a dataset
    given as a path elsewhere is linked there (a symlink; nothing is copied or changed).

    Args:
        dataset: a name under ``raw/`` or a path.
        data_root: the data root.
        settings: the benchmark settings.
        report_dir: the report folder.

    Returns:
        The job.

    Raises:
        InvalidInputError: when the dataset is missing, or ``raw/<name>`` is another folder.
    """
    folder = resolve_dataset_folder(dataset, data_root)
    under_raw = data_root.raw / folder.name
    if under_raw.exists() or under_raw.is_symlink():
        if under_raw.resolve() != folder.resolve():
            raise InvalidInputError(f"a different dataset of the same name exists at {under_raw}; rename one",
                                    path=folder)
    else:
        under_raw.parent.mkdir(parents=True, exist_ok=True)
        under_raw.symlink_to(folder, target_is_directory=True)
        logger.info("linked %s -> %s so evaluation finds the reference labels", under_raw, folder)
    return DatasetJob(folder.name, folder, data_root, settings, report_dir)


def verify_step(job: DatasetJob) -> dict[str, Any]:
    """Check the raw dataset; any problem stops this dataset.

    Args:
        job: the dataset job.

    Returns:
        ``{"problems": 0}``.

    Raises:
        DatasetProblemsError: naming the first problems.
    """
    api.check_dataset(job.folder, job.data_root, num_processes=job.settings.num_processes,
                      max_listed=MAX_LISTED_PROBLEMS)
    return {"problems": 0}


def plan_step(job: DatasetJob) -> dict[str, Any]:
    """Fingerprint (when needed) and plan the dataset.

    Args:
        job: the dataset job.

    Returns:
        ``{"configurations": planned names, "plans_digest": ...}``.
    """
    training = job.settings.training
    plans = api.plan(job.folder, job.data_root, planner=job.settings.planner,
                     num_processes=job.settings.num_processes, device=training.device,
                     time_budget_s=api.plan_budget(job.settings.planner, training.time_budget_s))
    return {"configurations": list(plans.configurations), "plans_digest": plans.digest()}


def choose_configurations(job: DatasetJob) -> list[str]:
    """The configurations to benchmark: those requested that the plans have, else the one the plans
    recommend (:meth:`Plans.recommended`: ``2d`` for 2D data; for 3D data ``3d_fullres``, or ``2d``
    where the ``auto`` planner found that 3d_fullres cannot converge in a short CPU budget).

    Args:
        job: the dataset job (plans must exist).

    Returns:
        The names.

    Raises:
        AutolungError: when none of them is planned.
    """
    plans = job.plans()
    if job.settings.configurations:
        wanted = list(job.settings.configurations)
    else:
        recommended = plans.recommended()
        logger.info("%s: configuration %s: %s", job.name, recommended.value, recommended.rule)
        wanted = [str(recommended.value)]
    chosen = [name for name in dict.fromkeys(wanted) if name in plans.configurations]
    for name in wanted:
        if name not in plans.configurations:
            logger.warning("%s: configuration %s is not planned; skipped", job.name, name)
    if not chosen:
        raise AutolungError(f"none of the configurations {', '.join(wanted)} is planned (planned: "
                            f"{', '.join(plans.configurations)})",
                            path=job.data_root.plans_file(job.name, job.settings.planner))
    return chosen


def preprocess_step(job: DatasetJob, configuration: str) -> dict[str, Any]:
    """Preprocess one configuration (finished cases are skipped by the preprocessor itself).

    Args:
        job: the dataset job.
        configuration: configuration name.

    Returns:
        ``{"processed": n, "skipped": n}``.
    """
    summary = api.preprocess(job.folder, job.data_root, [configuration], num_processes=job.settings.num_processes,
                             planner=job.settings.planner)
    return {"processed": len(summary.processed.get(configuration, [])),
            "skipped": len(summary.skipped.get(configuration, []))}


def fold_list(job: DatasetJob, configuration: str) -> list[int]:
    """The folds to train: those requested, else every fold of ``splits.json`` (created if missing).

    Args:
        job: the dataset job.
        configuration: a preprocessed configuration (its cases make new splits).

    Returns:
        Fold indices.

    Raises:
        AutolungError: for a requested fold that the splits do not have.
    """
    from autolung.training.data.cases import list_cases
    from autolung.training.splits import load_or_create_splits

    folder = job.data_root.preprocessed_configuration(job.name, configuration, job.settings.planner)
    splits_file = job.data_root.splits_file(job.name)
    splits = load_or_create_splits(splits_file, list_cases(folder))
    if job.settings.folds is None:
        return list(range(len(splits)))
    missing = [fold for fold in job.settings.folds if not 0 <= fold < len(splits)]
    if missing:
        raise AutolungError(f"fold(s) {missing} do not exist; the splits have {len(splits)} folds", path=splits_file)
    return list(dict.fromkeys(job.settings.folds))


def fold_is_complete(fold_folder: Path, plans_digest: str) -> bool:
    """A fold trained to the end with the current plans, with its validation predictions written.

    Args:
        fold_folder: ``fold_<k>``.
        plans_digest: the current plans' digest.

    Returns:
        True when nothing is left to do for it.
    """
    from autolung.benchmarking.collect import validation_predictions

    fold = FoldFolder.from_path(fold_folder)
    if fold is None:
        raise AutolungError("not a fold folder (fold_<k> or fold_all)", path=fold_folder)
    return (fold.is_finished() and fold.trained_plans_digest() == plans_digest
            and bool(validation_predictions(fold.path)))


def fold_has_predictions(job: DatasetJob, configuration: str, fold: int) -> bool:
    """Whether a fold's validation label maps exist (a recorded training is still usable).

    Args:
        job: the dataset job.
        configuration: configuration name.
        fold: fold index.

    Returns:
        True when at least one validation prediction is there.
    """
    from autolung.benchmarking.collect import validation_predictions

    return bool(validation_predictions(job.fold_folder(configuration, fold)))


def train_step(job: DatasetJob, configuration: str, fold: int) -> dict[str, Any]:
    """Train one fold (with its final validation), resuming an interrupted one; skip a finished one.

    Args:
        job: the dataset job.
        configuration: configuration name.
        fold: fold index.

    Returns:
        ``{"fold_folder": ..., "reused": bool}``.
    """
    folder = job.fold_folder(configuration, fold)
    layout = FoldFolder(folder, fold)
    digest = job.plans().digest()
    if fold_is_complete(folder, digest):
        logger.info("%s %s fold %d is already trained and validated; reusing it", job.name, configuration, fold)
        return {"fold_folder": str(folder), "reused": True}
    # Resume only a run of the same plans; train_fold refuses a checkpoint of other plans.
    resume = layout.is_resumable() and layout.trained_plans_digest() == digest
    options = replace(job.settings.training, final_validation=True, resume=resume)
    logger.info("%s: training %s fold %d%s", job.name, configuration, fold, " (resuming)" if resume else "")
    api.train(job.name, job.data_root, configuration, fold, **asdict(options))
    return {"fold_folder": str(folder), "reused": False}


def gather_cv_step(job: DatasetJob, configuration: str, folds: list[int]) -> dict[str, Any]:
    """Copy the folds' validation label maps into one folder: the cross-validation predictions.

    Args:
        job: the dataset job.
        configuration: configuration name.
        folds: the trained folds.

    Returns:
        ``{"folder": ..., "num_cases": n}``.

    Raises:
        AutolungError: when a fold has no validation predictions.
    """
    from autolung.benchmarking.collect import validation_predictions

    target = job.cv_folder(configuration)
    if target.exists():
        shutil.rmtree(target)  # ours alone; stale cases of other folds must not be evaluated
    target.mkdir(parents=True)
    count = 0
    for fold in folds:
        predictions = validation_predictions(job.fold_folder(configuration, fold))
        if not predictions:
            raise AutolungError("fold has no validation predictions", path=job.fold_folder(configuration, fold))
        for source in predictions:
            with atomic_path(target / source.name) as tmp:
                shutil.copyfile(source, tmp)
            count += 1
    return {"folder": str(target), "num_cases": count}


def best_configuration_step(job: DatasetJob, configurations: list[str]) -> dict[str, Any]:
    """Run find_best_configuration over the benchmarked configurations.

    Args:
        job: the dataset job.
        configurations: configuration names.

    Returns:
        The choice (as written to ``inference_choice.json``).
    """
    folders = [job.configuration_folder(c).name for c in configurations]
    # A benchmark trains the folds it was asked for (often fold 0 only), so its cross-validation
    # is partial by design; the choice records that and the report says so.
    return api.find_best_configuration(job.name, job.data_root, configurations=folders, allow_partial=True)


def evaluate_step(job: DatasetJob, configuration: str) -> dict[str, Any]:
    """Evaluate a configuration's cross-validation predictions against the raw labels.

    Args:
        job: the dataset job.
        configuration: configuration name.

    Returns:
        ``{"summary": path, "mean_foreground_dice": ...}``.
    """
    from autolung.inference.best_configuration import evaluation_labels

    mapping = job.plans().region_mapping
    target = job.evaluation_file(configuration)
    # A benchmark may train only some folds: the summary lists the cases no fold validated.
    summary = api.evaluate(job.data_root.raw / job.name / "labelsTr", job.cv_folder(configuration),
                           labels=evaluation_labels(mapping), tolerance_mm=job.settings.nsd_tolerance_mm,
                           output_json=target, ignore_label=mapping.ignore_label, allow_missing=True)
    dice = summary.get("mean_foreground_dice")
    return {"summary": str(target), "mean_foreground_dice": dice if dice == dice else None}
