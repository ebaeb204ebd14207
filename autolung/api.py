"""Every CLI step, callable from Python under the same name.

    from autolung import api
    root = api.data_root("~/autolung_data")
    api.plan_and_preprocess("Decathlon_Lung", root)
    api.train("Decathlon_Lung", root, configuration="3d_fullres", fold=0)
    api.predict("scans/", "masks/", root, dataset="Decathlon_Lung", configurations=["3d_fullres"])

Each function takes the data root explicitly (no environment variables are read here) and a
dataset given as a folder name under ``raw/`` or a path, exactly like ``-d`` on the CLI.

This module is the only one that composes pipeline steps: the CLI (``autolung_cli``) parses its
arguments, calls one function here and renders the result; ``autolung.demo`` and
``autolung.benchmarking.steps`` call the same functions. Results that carry more than one value
are small typed dataclasses (:class:`PreparedDataset`, :class:`PredictionResult`, ...).

Library imports are inside the functions: they defer heavy dependencies (torch, SimpleITK), so
``import autolung.api`` and every CLI command that needs neither stay fast.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolung.errors import DatasetProblemsError, InvalidInputError
from autolung.paths import DataRoot, resolve_dataset_folder
from autolung.planning.registry import DEFAULT_PLANNER
from autolung.progress import ProgressReporter

logger = logging.getLogger(__name__)

__all__ = [
    "data_root", "verify", "fingerprint", "plan", "preprocess", "plan_and_preprocess", "demo_data", "train",
    "predict", "ensemble", "find_best_configuration", "evaluate", "export_model", "install_model", "demo",
    "overlay", "download", "convert", "benchmark", "report", "check_dicom_output", "dicom_outputs",
    "check_dataset", "transfer_plans", "determine_postprocessing", "apply_postprocessing", "plot_overlays",
    "PreparedDataset", "PredictionResult", "plan_budget", "explain_plans", "remote_dataset_names",
    "parse_duration", "parse_overrides", "parse_prediction_fold", "training_options", "distributed_context",
    "benchmark_settings", "benchmark_comparisons", "load_postprocessing", "summary_table", "model_configurations",
    "pairs_options",
]


@dataclass
class PreparedDataset:
    """What :func:`plan_and_preprocess` did.

    Attributes:
        plans: the saved plans.
        plans_file: where they were saved.
        preprocessing: the preprocessing summary (cases processed and skipped per configuration).
        num_cases_verified: cases checked by verify (None when verify did not run).
    """

    plans: Any
    plans_file: Path
    preprocessing: Any
    num_cases_verified: int | None = None


@dataclass
class PredictionResult:
    """What :func:`predict` wrote.

    Attributes:
        masks: the written masks, in case order.
        label_names: ``{value: name}`` of the foreground labels of the (first) model.
        dicom_files: DICOM SEG or RTSTRUCT files written beside the masks (``dicom_format``).
        report: the lesion report (``report=True``), as written to ``report/report.json``.
        report_folder: where that report went.
        peak_rss_mb: the process's peak resident memory when prediction ended.
    """

    masks: list[Path]
    label_names: dict[int, str] = field(default_factory=dict)
    dicom_files: list[Path] = field(default_factory=list)
    report: dict | None = None
    report_folder: Path | None = None
    peak_rss_mb: float = 0.0


def data_root(path: str | Path) -> DataRoot:
    """A :class:`DataRoot` for ``path`` (holding raw/, preprocessed/, results/)."""
    return DataRoot(Path(path).expanduser().resolve())


def _folder(dataset: str | Path, root: DataRoot) -> Path:
    return resolve_dataset_folder(dataset, root)


def verify(dataset: str | Path, root: DataRoot, num_processes: int = 1) -> list:
    """``autolung verify``: every problem of a raw dataset (empty list when clean)."""
    from autolung.dataset.verify import verify_dataset

    return verify_dataset(_folder(dataset, root), num_processes=num_processes)


def check_dataset(dataset: str | Path, root: DataRoot, num_processes: int = 1, max_listed: int | None = None):
    """Verify a raw dataset and stop at its problems.

    Args:
        dataset: a name under ``raw/`` or a path.
        root: the data root.
        num_processes: worker processes reading cases.
        max_listed: problems named in the error's message (None: all; each is in ``problems``).

    Returns:
        The :class:`autolung.dataset.verify.VerifyResult` (no problems, the number of cases).

    Raises:
        DatasetProblemsError: listing every problem.
    """
    from autolung.dataset.verify import run_verification

    folder = _folder(dataset, root)
    result = run_verification(folder, num_processes=num_processes)
    if result.problems:
        raise DatasetProblemsError(result.problems, result.num_cases, folder, max_listed)
    logger.debug("%s: dataset OK, %d cases", folder, result.num_cases)
    return result


def fingerprint(dataset: str | Path, root: DataRoot, num_processes: int = 2, progress: ProgressReporter | None = None) -> dict:
    """``autolung fingerprint``: compute and save fingerprint.json."""
    from autolung.fingerprint.run import fingerprint_dataset

    return fingerprint_dataset(_folder(dataset, root), root, num_processes=num_processes, progress=progress)


def plan(dataset: str | Path, root: DataRoot, planner: str = DEFAULT_PLANNER, gpu_memory_gb: float | None = None,
         overrides: Any = None, num_processes: int = 2, device: str = "auto", time_budget_s: float | None = None,
         progress: ProgressReporter | None = None, clean: bool = False):
    """``autolung plan``: plan configurations and save plans.json; returns the Plans.

    ``device`` and ``time_budget_s`` size the plan for planners that use them (``planner="auto"``, the
    default: the plan that trains best on that device in that budget); see :func:`plan_budget` for the
    budget of a plan made for a given training. The fingerprint is computed first when missing, or
    always with ``clean``; ``progress`` receives its progress.
    """
    from autolung.planning.run import plan_dataset

    folder = _folder(dataset, root)
    if clean:
        fingerprint(folder, root, num_processes=num_processes, progress=progress)
    # A budget is passed only when there is one: planners that do not size to one warn about it.
    sizing = {"time_budget_s": time_budget_s} if time_budget_s is not None else {}
    return plan_dataset(folder, root, planner=planner, gpu_memory_gb=gpu_memory_gb, overrides=overrides,
                        num_processes=num_processes, progress=progress, device=device, **sizing)


def plan_budget(planner: str, training_budget_s: float | None) -> float | None:
    """The time budget to size a plan for, given the training it is made for.

    Args:
        planner: the planner's name.
        training_budget_s: the wall-clock budget of the training.

    Returns:
        ``training_budget_s`` for planners that size the plan to the device and budget
        (``auto``), None for the others (they plan the same whatever the budget).
    """
    from autolung.planning.registry import sizes_to_device_and_budget

    return training_budget_s if sizes_to_device_and_budget(planner) else None


def explain_plans(plans: Any) -> str:
    """Every decision of ``plans`` and the rule that made it, as text (``plan --explain``)."""
    from autolung.planning.explain import format_explanation

    return format_explanation(plans)


def preprocess(dataset: str | Path, root: DataRoot, configurations: Sequence[str] | None = None,
               num_processes: int = 2, planner: str | None = None, progress: ProgressReporter | None = None):
    """``autolung preprocess``: preprocess the planned configurations (resumable); ``planner`` None: the
    dataset's only plans."""
    from autolung.preprocessing.run import preprocess_dataset

    return preprocess_dataset(_folder(dataset, root), root, configurations=configurations,
                              num_processes=num_processes, planner=planner, progress=progress)


def plan_and_preprocess(dataset: str | Path, root: DataRoot, configurations: Sequence[str] | None = None,
                        num_processes: int = 2, planner: str = DEFAULT_PLANNER, gpu_memory_gb: float | None = None,
                        overrides: Any = None, run_verify: bool = False, progress: ProgressReporter | None = None,
                        device: str = "auto", time_budget_s: float | None = None,
                        clean: bool = False, max_listed_problems: int | None = None) -> PreparedDataset:
    """``autolung plan_and_preprocess``: (verify,) fingerprint, plan and preprocess in one go.

    Args:
        dataset: a name under ``raw/`` or a path.
        root: the data root.
        configurations: the configurations to preprocess (None: all planned).
        num_processes: worker processes for verify, fingerprint and preprocessing.
        planner: the planner.
        gpu_memory_gb: GPU memory budget of the plan.
        overrides: forced patch size, batch size or spacing (``PlanOverrides``; None or empty: none).
        run_verify: check the dataset first, and stop at its problems.
        progress: receives the fingerprint's and the preprocessing's progress.
        device: the device training will run on (planners that size to it).
        time_budget_s: the training budget the plan is sized for (planners that size to it).
        clean: recompute the fingerprint even if one exists.
        max_listed_problems: problems verify names in the error's message (None: all).

    Returns:
        The plans, their file and the preprocessing summary.

    Raises:
        DatasetProblemsError: with ``run_verify`` when the dataset has problems (all listed).
    """
    folder = _folder(dataset, root)
    num_cases = check_dataset(folder, root, max_listed=max_listed_problems).num_cases if run_verify else None
    if overrides is not None and overrides.is_empty():
        overrides = None
    plans = plan(folder, root, planner=planner, gpu_memory_gb=gpu_memory_gb, overrides=overrides,
                 num_processes=num_processes, device=device, time_budget_s=time_budget_s, progress=progress,
                 clean=clean)
    summary = preprocess(folder, root, configurations, num_processes, planner, progress)
    return PreparedDataset(plans, root.plans_file(folder.name, planner), summary, num_cases)


def transfer_plans(source_dataset: str, target_dataset: str | Path, root: DataRoot, source_planner: str | None = None,
                   target_planner: str | None = None, overwrite: bool = False) -> Path:
    """``autolung transfer_plans``: the source dataset's plans for the target (pretraining)."""
    from autolung.planning.transfer import transfer_plans as transfer

    return transfer(root, Path(source_dataset).name, _folder(target_dataset, root), source_planner, target_planner,
                    overwrite)


def demo_data(root: DataRoot, num_cases: int = 20, seed: int = 0, with_lung_label: bool = False,
              output: str | Path | None = None) -> Path:
    """``autolung demo_data``: write the synthetic lung CT set to raw/Demo_LungCT (or ``output``)."""
    from autolung.demo_data import DEMO_DATASET_NAME, write_demo_dataset

    target = Path(output) if output is not None else root.raw / DEMO_DATASET_NAME
    return write_demo_dataset(target, num_cases=num_cases, seed=seed, with_lung_label=with_lung_label)


def training_configuration(dataset: str, root: DataRoot, configuration: str | None = None,
                           planner: str | None = None) -> str:
    """The configuration ``train`` trains: ``configuration`` when given, else the one the plans recommend.

    Args:
        dataset: the dataset's name (a path stands for its folder name).
        root: the data root.
        configuration: the configuration named by the caller, or None.
        planner: the planner of the plans (None: the only one the dataset has).

    Returns:
        The configuration name.
    """
    if configuration:
        return configuration
    from autolung.planning.plans import Plans
    from autolung.planning.registry import planner_in_use, planners_with_plans

    name = Path(dataset).name
    planner = planner_in_use(planner, planners_with_plans(root, name), name)
    recommended = Plans.load(root.plans_file(name, planner)).recommended()
    logger.info("configuration %s (none named): %s", recommended.value, recommended.rule)
    return str(recommended.value)


def train(dataset: str, root: DataRoot, configuration: str | None = None, fold: int | str = 0,
          progress: ProgressReporter | None = None, distributed: Any = None, **options: Any) -> Path:
    """``autolung train``: train one fold; ``options`` are :class:`TrainingOptions` fields.

    Args:
        dataset: the dataset's name (a path stands for its folder name).
        root: the data root.
        configuration: the configuration; None: the one the plans recommend (:func:`training_configuration`).
        fold: a fold number, ``"all"``, or its text (``"0"``).
        progress: receives the training's progress.
        distributed: this process's :func:`distributed_context` when launched by torchrun.
        **options: :class:`autolung.training.options.TrainingOptions` fields.

    Returns:
        The fold folder.
    """
    from autolung.training.options import TrainingOptions
    from autolung.training.run import train_fold
    from autolung.training.splits import parse_fold

    fold = parse_fold(fold) if isinstance(fold, str) else fold
    configuration = training_configuration(dataset, root, configuration, options.get("planner"))
    return train_fold(root, Path(dataset).name, configuration, fold, TrainingOptions(**options),
                      distributed=distributed, progress=progress)


def distributed_context(rank: int, world_size: int, local_rank: int = 0) -> Any:
    """This process's place in a DDP group (``train`` launched by torchrun)."""
    from autolung.training.distributed import DistributedContext

    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank)


def training_options(**options: Any) -> Any:
    """A validated :class:`autolung.training.options.TrainingOptions` (``benchmark`` settings)."""
    from autolung.training.options import TrainingOptions

    return TrainingOptions(**options)


def parse_duration(text: str) -> float:
    """``90s``, ``10m``, ``1.5h`` (or plain seconds) in seconds."""
    from autolung.training.options import parse_duration as parse

    return parse(text)


def parse_overrides(patch_size: Any = None, batch_size: int | None = None, target_spacing: Any = None,
                    configurations: Sequence[str] | None = None) -> Any:
    """Forced patch size, batch size and spacing as :class:`autolung.planning.overrides.PlanOverrides`."""
    from autolung.planning.overrides import parse_overrides as parse

    return parse(patch_size, batch_size, target_spacing, configurations)


def parse_prediction_fold(value: int | str) -> int | str:
    """A fold to predict with: a number or ``all``."""
    from autolung.inference.model import parse_fold

    return parse_fold(value)


def predict(input_path: str | Path, output_folder: str | Path, root: DataRoot | None = None,
            dataset: str | None = None, configurations: Sequence[str] | None = None,
            folds: Sequence[int | str] | None = None, model: str | Path | None = None, planner: str | None = None,
            checkpoint: str = "final", progress: ProgressReporter | None = None, dicom_format: str | None = None,
            lesion_report: bool = False, sr: bool = False, seg_type: str = "binary", anonymize: bool = False,
            num_threads: int | None = None, **options: Any) -> PredictionResult:
    """``autolung predict``: segment images with trained folds or a model bundle.

    Args:
        input_path: an image, a folder of images, a DICOM series folder or a folder of them.
        output_folder: where the masks go (not the input folder).
        root: the data root (with ``dataset``).
        dataset: the dataset whose trained models to use; an installed model needs no ``raw/``.
        configurations: configurations to use (None: the stored choice).
        folds: folds to average (None: the stored or every finished fold).
        model: a model bundle (zip or folder) or nnU-Net model instead of ``dataset``.
        planner: planner of the configuration folders.
        checkpoint: ``final``, ``best`` or ``latest``.
        progress: receives the cases' and windows' progress.
        dicom_format: also write ``dicom-seg`` or ``rtstruct`` files (DICOM input) to ``<output>/dicom``.
        lesion_report: also measure every lesion into ``<output>/report`` (as :func:`report`).
        sr: with ``lesion_report``: a DICOM SEG and TID 1500 SR per case (DICOM input).
        seg_type: DICOM SEG type, ``binary`` or ``fractional``.
        anonymize: blank patient and visit attributes in DICOM output.
        num_threads: CPU threads for torch (None: torch's default).
        **options: :class:`autolung.inference.predictor.PredictionOptions` fields (``mode``,
            ``mirror``, ``mirror_axes``, ``step_size``, ``crop_to_body``, ``skip_empty_windows``, ``restrict_to_body``,
            ``device``, ``save_probabilities``, ``output_ending``, ...).

    Returns:
        The masks and what was written beside them.

    Raises:
        InvalidInputError: ``sr`` without ``lesion_report``; DICOM output for non-DICOM input (both
            before anything is predicted).
    """
    from autolung.inference.predictor import PredictionOptions, peak_rss_mb, predict_paths
    from autolung.inference.sources import select_models
    from autolung.progress import PredictionTasks

    if num_threads:
        import torch

        torch.set_num_threads(num_threads)
    if sr and not lesion_report:
        raise InvalidInputError("`sr` needs `lesion_report`")
    if dicom_format is not None:
        check_dicom_output(input_path, dicom_format)
    if sr:
        check_dicom_output(input_path, "dicom-seg")
    prediction = PredictionOptions(**options)
    name = _results_name(dataset, root) if dataset and root is not None else None
    with contextlib.ExitStack() as stack:
        selection = select_models(stack, root, name, configurations, folds, planner,
                                  Path(model) if model else None, checkpoint=checkpoint)
        if prediction.postprocessing is None:
            prediction.postprocessing = selection.postprocessing
        tasks = PredictionTasks(progress) if progress is not None else None
        written = predict_paths(input_path, output_folder, selection.models, prediction, tasks)
        label_names = {value: label for label, value in selection.models[0].plans.labels.items() if value != 0}
    result = PredictionResult(written, label_names, peak_rss_mb=peak_rss_mb())
    output_folder = Path(output_folder)
    if dicom_format is not None:
        result.dicom_files = dicom_outputs(input_path, output_folder, dicom_format, label_names, seg_type, anonymize)
    if lesion_report:
        from autolung.io.formats import strip_ending

        result.report_folder = output_folder / "report"
        result.report = report(input_path, output_folder, result.report_folder, label_names=label_names,
                               sr=sr, anonymize=anonymize, cases=[strip_ending(p) for p in written])
    return result


def _results_name(dataset: str, root: DataRoot) -> str:
    """Dataset name for results/: an installed model needs no raw/ folder."""
    if (root.results / dataset).is_dir():
        return dataset
    return _folder(dataset, root).name


def ensemble(input_folders: Sequence[str | Path], output_folder: str | Path,
             postprocessing_file: str | Path | None = None, **options: Any) -> list[Path]:
    """``autolung ensemble``: average saved probabilities of several runs into masks.

    Args:
        input_folders: two or more folders of ``<case>.npz``.
        output_folder: where the masks go.
        postprocessing_file: a postprocessing.json (or inference_choice.json) to apply.
        **options: :func:`autolung.inference.ensembling.ensemble_folders` options
            (``output_ending``, ``postprocessing``, ``save_probabilities``, ``overwrite``).

    Returns:
        The written masks.

    Raises:
        InvalidInputError: fewer than two input folders.
    """
    from autolung.inference.ensembling import ensemble_folders

    if len(input_folders) < 2:
        raise InvalidInputError("ensemble needs at least two input folders")
    if postprocessing_file is not None:
        options["postprocessing"] = load_postprocessing(postprocessing_file)
    return ensemble_folders(input_folders, output_folder, **options)


def load_postprocessing(path: str | Path) -> dict:
    """The rules of a postprocessing.json (or of an inference_choice.json)."""
    from autolung.inference.postprocessing_folders import load_postprocessing as load

    return load(path)


def determine_postprocessing(prediction_folder: str | Path, reference_folder: str | Path, **options: Any) -> dict:
    """``autolung determine_postprocessing``: choose component rules for a folder of predictions."""
    from autolung.inference.postprocessing_folders import determine_postprocessing as determine

    return determine(prediction_folder, reference_folder, **options)


def apply_postprocessing(input_folder: str | Path, output_folder: str | Path, rules_file: str | Path,
                         overwrite: bool = False, progress: ProgressReporter | None = None) -> list[Path]:
    """``autolung apply_postprocessing``: apply a postprocessing.json (or inference_choice.json) to a folder."""
    from autolung.inference.postprocessing_folders import apply_postprocessing_folder, load_postprocessing

    return apply_postprocessing_folder(input_folder, output_folder, load_postprocessing(rules_file), overwrite,
                                       progress)


def find_best_configuration(dataset: str, root: DataRoot, configurations: Sequence[str] | None = None,
                            allow_ensembles: bool = True, allow_partial: bool = False) -> dict:
    """``autolung find_best_configuration``: choose configurations and postprocessing from CV."""
    from autolung.inference.best_configuration import find_best_configuration as choose

    return choose(root, Path(dataset).name, configurations, allow_ensembles, allow_partial)


def evaluate(reference_folder: str | Path, prediction_folder: str | Path, **options: Any) -> dict:
    """``autolung evaluate``: per-case, per-class and lesion-wise metrics; returns the summary."""
    from autolung.evaluation.evaluate import evaluate_folders

    return evaluate_folders(reference_folder, prediction_folder, **options)


def summary_table(summary: dict) -> Any:
    """The rows of an evaluation summary to show (a ``SummaryTable``: title, columns, rows of text)."""
    from autolung.evaluation.report import summary_table as table

    return table(summary)


def export_model(dataset: str, root: DataRoot, configuration_folders: Sequence[str] | None, output_zip: str | Path,
                 folds: Sequence[int | str] | None = None, planner: str | None = None) -> Path:
    """``autolung export_model``: bundle plans, weights, postprocessing and a checksum manifest.

    ``configuration_folders`` are folder names (``3d_fullres__default``) or configurations
    (``3d_fullres``, of ``planner``; None: the only planner trained for them); None: see
    :func:`model_configurations`.
    """
    from autolung.inference.bundle import export_model as export

    names = model_configurations(dataset, root, configuration_folders, planner)
    return export(root.results_dataset(Path(dataset).name), names, output_zip, folds)


def model_configurations(dataset: str, root: DataRoot, configurations: Sequence[str] | None = None,
                         planner: str | None = None) -> list[str]:
    """Configuration folders of a trained dataset: those given, else the stored choice, else all trained.

    Raises:
        InvalidInputError: the dataset has no trained model.
    """
    import json

    results_dataset = root.results_dataset(Path(dataset).name)
    if not results_dataset.is_dir():
        raise InvalidInputError("no trained models for this dataset", path=results_dataset)
    if configurations:
        bare = [c for c in configurations if "__" not in c]
        if bare:
            from autolung.planning.registry import planner_in_use, planners_with_trained

            name = Path(dataset).name
            planner = planner_in_use(planner, planners_with_trained(root, name, bare), name, "trained configurations")
        return [c if "__" in c else f"{c}__{planner}" for c in configurations]
    choice = results_dataset / "inference_choice.json"
    if choice.is_file():
        return [entry["folder"] for entry in json.loads(choice.read_text())["configurations"]]
    found = sorted(p.name for p in results_dataset.glob("*__*") if p.is_dir())
    if not found:
        raise InvalidInputError("no trained configurations found", path=results_dataset)
    return found


def install_model(bundle: str | Path, root: DataRoot, overwrite: bool = False,
                  configurations: Sequence[str] | None = None, folds: Sequence[int] | None = None) -> Path:
    """``autolung install_model``: verify a bundle (or translate an nnU-Net v2 model) and install it under results/.

    ``configurations`` and ``folds`` select what to take from an nnU-Net model (a bundle is installed whole).
    """
    from autolung.inference.bundle import install_model as install
    from autolung.inference.bundle import install_nnunet_model
    from autolung.nnunet.importer import is_nnunet_model

    if is_nnunet_model(bundle):
        return install_nnunet_model(bundle, root.results, overwrite, configurations, folds)
    return install(bundle, root.results, overwrite=overwrite)


def demo(root: DataRoot, **options: Any):
    """``autolung demo``: the whole pipeline on the synthetic set; ``options`` are DemoOptions fields."""
    from autolung.demo import DemoOptions, run_demo

    return run_demo(root, DemoOptions(**options))


def overlay(image: str | Path, mask: str | Path, output: str | Path, reference: str | Path | None = None,
            window: str = "lung", num_slices: int = 6, title: str | None = None) -> Path:
    """``autolung overlay``: a PNG montage of slices with prediction (and reference) outlines.

    Args:
        image: image file or DICOM folder.
        mask: the predicted mask (same grid).
        output: the PNG to write.
        reference: a reference mask, drawn in green.
        window: CT window, ``lung`` or ``soft_tissue``.
        num_slices: slices in the montage.
        title: the picture's title (default: the image's file name).

    Returns:
        ``output``.

    Raises:
        InvalidInputError: an unknown window, an output not ending in .png, or masks of another grid.
    """
    from autolung.io.images import read_image, read_label
    from autolung.provenance import mask_plans_digest
    from autolung.visualization.overlay import CT_WINDOWS, render_overlay

    image, mask, output = Path(image), Path(mask), Path(output)
    if window not in CT_WINDOWS:
        raise InvalidInputError(f"`window` must be one of {', '.join(CT_WINDOWS)}, got {window!r}")
    if output.suffix.lower() != ".png":
        raise InvalidInputError("the overlay is a PNG; give an output ending in .png", path=output)
    picture, geometry = read_image(image)
    predicted, _ = read_label(mask)
    if predicted.shape != picture.shape[1:]:
        raise InvalidInputError(f"mask shape {predicted.shape} differs from the image's {picture.shape[1:]}",
                                path=mask)
    expected = None
    if reference is not None:
        expected, _ = read_label(reference)
        if expected.shape != predicted.shape:
            raise InvalidInputError(f"reference shape {expected.shape} differs from the mask's {predicted.shape}",
                                    path=reference)
    return render_overlay(picture, predicted, expected, output, spacing=geometry.spacing, num_slices=num_slices,
                          window=window, title=image.name if title is None else title,
                          plans_digest=mask_plans_digest(mask))


def plot_overlays(dataset: str | Path, root: DataRoot, output_folder: str | Path,
                  configuration: str | None = None, planner: str | None = None, num_processes: int = 1,
                  num_slices: int = 6, progress: ProgressReporter | None = None) -> list[Path]:
    """``autolung plot_overlays``: one QC picture per training case, raw or (``configuration``) preprocessed."""
    from autolung.visualization.dataset_overlays import dataset_overlays as draw

    if configuration is None:
        return draw(output_folder, dataset_folder=_folder(dataset, root), num_processes=num_processes,
                    num_slices=num_slices, progress=progress)
    from autolung.planning.registry import planner_in_use, planners_with_plans

    name = Path(dataset).name
    planner = planner_in_use(planner, planners_with_plans(root, name), name)
    folder = root.preprocessed_configuration(name, configuration, planner)
    return draw(output_folder, preprocessed_folder=folder, num_processes=num_processes, num_slices=num_slices,
                progress=progress)


def download(name: str, root: DataRoot, url: str | None = None, md5: str | None = None,
             progress: ProgressReporter | None = None, **options: Any) -> Path:
    """``autolung download``: fetch a Medical Segmentation Decathlon task into raw/ (by name).

    ``url`` and ``md5`` replace the catalogue's (a mirror); ``progress`` receives the
    ``download`` (bytes) and ``unpack`` (files) tasks; ``options`` are ``overwrite`` and
    ``keep_archive`` (see :func:`autolung.datasets_remote.install_dataset`).
    """
    from autolung.datasets_remote import install_dataset, resolve_remote_dataset

    return install_dataset(resolve_remote_dataset(name, url=url, md5=md5), root, progress=progress, **options)


def remote_dataset_names() -> list[str]:
    """The names :func:`download` knows."""
    from autolung.datasets_remote.catalog import known_names

    return known_names()


def convert(kind: str, *args: Any, **kwargs: Any) -> Any:
    """``autolung convert KIND``: ``pairs``, ``slices``, ``layout`` or ``export`` (see autolung.convert).

    Every kind takes ``progress`` (a :class:`ProgressReporter`, one step per case).
    """
    from autolung import convert as conversions

    functions = {"pairs": conversions.convert_pairs, "slices": conversions.convert_slices,
                 "layout": conversions.convert_layout, "export": conversions.export_pairs}
    if kind not in functions:
        raise ValueError(f"unknown conversion {kind!r}; one of {', '.join(functions)}")
    return functions[kind](*args, **kwargs)


def pairs_options(image_patterns: Sequence[str], mask_pattern: str, labels: Sequence[str] | None = None,
                  **options: Any) -> Any:
    """The :class:`autolung.convert.PairsOptions` of ``convert("pairs", ...)``.

    ``labels`` are ``name=value`` texts (``background=0 lung=1``; None: the values found in the
    masks); ``options`` are the other PairsOptions fields.
    """
    from autolung.convert import PairsOptions, parse_labels

    return PairsOptions(image_patterns=tuple(image_patterns), mask_pattern=mask_pattern,
                        labels=parse_labels(list(labels)) if labels else None, **options)


def benchmark(settings: Any, root: DataRoot, report_dir: str | Path, comparisons: Any = None) -> Any:
    """``autolung benchmark``: the whole pipeline on several datasets, with reports.

    Args:
        settings: :func:`benchmark_settings`.
        root: the data root.
        report_dir: the report folder (rerun with the same one to resume).
        comparisons: :func:`benchmark_comparisons`, shown beside the results.

    Returns:
        The ``BenchmarkOutcome``: report paths and the datasets that did not finish.
    """
    from autolung.benchmarking.runner import run_benchmark

    return run_benchmark(settings, root, report_dir, comparisons)


def benchmark_settings(datasets: Sequence[str], training: Any, configurations: Sequence[str] | None = None,
                       folds: Sequence[int] | None = None, num_processes: int = 2,
                       nsd_tolerance_mm: float = 2.0) -> Any:
    """The :class:`autolung.benchmarking.settings.BenchmarkSettings` of :func:`benchmark`.

    ``training`` is a :func:`training_options`; the benchmark always runs the final validation.
    """
    from dataclasses import replace

    from autolung.benchmarking.settings import BenchmarkSettings

    return BenchmarkSettings(datasets=list(datasets), configurations=list(configurations) if configurations else None,
                             folds=list(folds) if folds else None, training=replace(training, final_validation=True),
                             num_processes=num_processes, nsd_tolerance_mm=nsd_tolerance_mm)


def benchmark_comparisons(compare: str | Path | None = None, compare_nnunet: str | Path | None = None,
                          nnunet_names: Sequence[str] | None = None) -> Any:
    """Results to show beside a benchmark's: another report, and nnU-Net v2 results.

    Args:
        compare: another benchmark report (folder or report.json).
        compare_nnunet: an nnU-Net v2 results folder.
        nnunet_names: ``OURS=Dataset004_Name`` matches of dataset names.

    Raises:
        AutolungError: ``nnunet_names`` without ``compare_nnunet``.
    """
    from autolung.benchmarking import compare as compare_module
    from autolung.benchmarking import nnunet_results
    from autolung.benchmarking.report import Comparisons

    comparisons = Comparisons(nnunet_names=nnunet_results.parse_name_mapping(nnunet_names or []))
    if compare is not None:
        comparisons.other = compare_module.load_report(compare)
        comparisons.other_source = str(compare)
    if compare_nnunet is not None:
        comparisons.nnunet = nnunet_results.read_nnunet_results(compare_nnunet)
        comparisons.nnunet_source = str(compare_nnunet)
    elif nnunet_names:
        raise InvalidInputError("`nnunet_names` needs `compare_nnunet`")
    return comparisons


def report(images: str | Path, masks: str | Path, output: str | Path, connectivity: int = 3,
           min_volume_mm3: float = 0.0, labels: Sequence[int] | None = None,
           lung_labels: Sequence[int] | None = None, label_names: dict[int, str] | None = None,
           pictures: bool = True, plans_digest: str | None = None, sr: bool = False,
           anonymize: bool = False, cases: Sequence[str] | None = None) -> dict:
    """``autolung report``: per-lesion measurements, lesions.csv, report.json, pictures, summaries.

    ``label_names`` default to a dataset.json beside the masks; ``lung_labels`` to the labels
    named like lung; ``sr`` adds a DICOM SEG and TID 1500 SR per case (DICOM images only),
    ``anonymize`` blanks their patient attributes. See :mod:`autolung.reporting.report`.
    """
    from autolung.reporting.measure import MeasurementOptions
    from autolung.reporting.report import default_label_names, lung_labels_from_names, write_report

    names = dict(label_names) if label_names is not None else default_label_names(masks)
    lungs = tuple(lung_labels) if lung_labels is not None else lung_labels_from_names(names)
    options = MeasurementOptions(connectivity=connectivity, min_volume_mm3=min_volume_mm3,
                                 labels=tuple(labels) if labels else None, lung_labels=lungs, label_names=names)
    return write_report(images, masks, output, options, pictures=pictures, plans_digest=plans_digest, sr=sr,
                        anonymize=anonymize, cases=cases)


def check_dicom_output(input_path: str | Path, output_format: str) -> None:
    """Refuse, before predicting, DICOM output (``dicom-seg``, ``rtstruct``) for non-DICOM input."""
    from autolung.reporting.dicom_outputs import check_dicom_input

    check_dicom_input(input_path, output_format)


def dicom_outputs(input_path: str | Path, mask_folder: str | Path, output_format: str,
                  label_names: dict[int, str] | None = None, seg_type: str = "binary",
                  anonymize: bool = False) -> list[Path]:
    """``predict --format dicom-seg|rtstruct``: the predicted masks as DICOM in ``<mask_folder>/dicom``."""
    from autolung.reporting.dicom_outputs import write_dicom_masks

    return write_dicom_masks(input_path, mask_folder, output_format, label_names, seg_type, anonymize)
