"""Every CLI step, callable from Python under the same name.

    from autolung import api
    root = api.data_root("~/autolung_data")
    api.plan_and_preprocess("Decathlon_Lung", root)
    api.train("Decathlon_Lung", root, configuration="3d_fullres", fold=0)
    api.predict("scans/", "masks/", root, dataset="Decathlon_Lung", configurations=["3d_fullres"])

Each function takes the data root explicitly (no environment variables are read here) and a
dataset given as a folder name under ``raw/`` or a path, exactly like ``-d`` on the CLI.
Imports are lazy so ``import autolung.api`` stays cheap.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autolung.paths import DataRoot, resolve_dataset_folder
from autolung.planning.registry import DEFAULT_PLANNER
from autolung.progress import ProgressReporter

__all__ = [
    "data_root", "verify", "fingerprint", "plan", "preprocess", "plan_and_preprocess", "demo_data", "train",
    "predict", "ensemble", "find_best_configuration", "evaluate", "export_model", "install_model", "demo",
    "overlay", "download", "convert", "benchmark", "report", "check_dicom_output", "dicom_outputs",
]


def data_root(path: str | Path) -> DataRoot:
    """A :class:`DataRoot` for ``path`` (holding raw/, preprocessed/, results/)."""
    return DataRoot(Path(path).expanduser().resolve())


def _folder(dataset: str | Path, root: DataRoot) -> Path:
    return resolve_dataset_folder(dataset, root)


def verify(dataset: str | Path, root: DataRoot, num_processes: int = 1) -> list:
    """``autolung verify``: every problem of a raw dataset (empty list when clean)."""
    from autolung.dataset.verify import verify_dataset

    return verify_dataset(_folder(dataset, root), num_processes=num_processes)


def fingerprint(dataset: str | Path, root: DataRoot, num_processes: int = 2, progress: ProgressReporter | None = None) -> dict:
    """``autolung fingerprint``: compute and save fingerprint.json."""
    from autolung.fingerprint.run import fingerprint_dataset

    return fingerprint_dataset(_folder(dataset, root), root, num_processes=num_processes, progress=progress)


def plan(dataset: str | Path, root: DataRoot, planner: str = DEFAULT_PLANNER, gpu_memory_gb: float | None = None,
         overrides: Any = None, num_processes: int = 2, device: str = "auto", time_budget_s: float | None = None):
    """``autolung plan``: plan configurations and save plans.json; returns the Plans.

    ``device`` and ``time_budget_s`` size the plan for planners that use them (``planner="auto"``, the
    default: the plan that trains best on that device in that budget).
    """
    from autolung.planning.run import plan_dataset

    return plan_dataset(_folder(dataset, root), root, planner=planner, gpu_memory_gb=gpu_memory_gb,
                        overrides=overrides, num_processes=num_processes, device=device,
                        time_budget_s=time_budget_s)


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
                        device: str = "auto", time_budget_s: float | None = None):
    """``autolung plan_and_preprocess``: (verify,) fingerprint, plan and preprocess in one go.

    Raises:
        AutolungError: with ``run_verify`` when the dataset has problems (all listed).
    """
    from autolung.errors import InvalidInputError

    folder = _folder(dataset, root)
    if run_verify:
        problems = verify(folder, root)
        if problems:
            listing = "; ".join(f"{p.path}: {p.message}" for p in problems)
            raise InvalidInputError(f"{len(problems)} problem(s) found: {listing}", path=folder)
    plan(folder, root, planner=planner, gpu_memory_gb=gpu_memory_gb, overrides=overrides,
         num_processes=num_processes, device=device, time_budget_s=time_budget_s)
    return preprocess(folder, root, configurations, num_processes, planner, progress)


def transfer_plans(source_dataset: str, target_dataset: str | Path, root: DataRoot, source_planner: str | None = None,
                   target_planner: str | None = None, overwrite: bool = False) -> Path:
    """``autolung transfer_plans``: the source dataset's plans for the target (pretraining)."""
    from autolung.planning.transfer import transfer_plans as transfer

    return transfer(root, Path(source_dataset).name, _folder(target_dataset, root), source_planner, target_planner,
                    overwrite)


def demo_data(root: DataRoot, num_cases: int = 20, seed: int = 0, with_lung_label: bool = False) -> Path:
    """``autolung demo_data``: write the synthetic lung CT set to raw/Demo_LungCT."""
    from autolung.demo_data import DEMO_DATASET_NAME, write_demo_dataset

    return write_demo_dataset(root.raw / DEMO_DATASET_NAME, num_cases=num_cases, seed=seed,
                              with_lung_label=with_lung_label)


def train(dataset: str, root: DataRoot, configuration: str = "3d_fullres", fold: int | str = 0,
          progress: ProgressReporter | None = None, **options: Any) -> Path:
    """``autolung train``: train one fold; ``options`` are :class:`TrainingOptions` fields."""
    from autolung.training.options import TrainingOptions
    from autolung.training.run import train_fold

    return train_fold(root, Path(dataset).name, configuration, fold, TrainingOptions(**options),
                      progress=progress)


def predict(input_path: str | Path, output_folder: str | Path, root: DataRoot | None = None,
            dataset: str | None = None, configurations: Sequence[str] | None = None,
            folds: Sequence[int | str] | None = None, model: str | Path | None = None, planner: str | None = None,
            checkpoint: str = "final", **options: Any) -> list[Path]:
    """``autolung predict``: segment images with trained folds or a model bundle.

    ``options`` are :class:`autolung.inference.predictor.PredictionOptions` fields
    (``mode``, ``mirror``, ``mirror_axes``, ``step_size``, ``crop_to_body``, ``skip_empty_windows``,
    ``device``, ``save_probabilities``, ...).
    """
    from autolung.inference.predictor import PredictionOptions, predict_paths
    from autolung.inference.sources import select_models

    prediction = PredictionOptions(**options)
    with contextlib.ExitStack() as stack:
        selection = select_models(stack, root, Path(dataset).name if dataset else None, configurations, folds,
                                  planner, Path(model) if model else None, checkpoint=checkpoint)
        if prediction.postprocessing is None:
            prediction.postprocessing = selection.postprocessing
        return predict_paths(input_path, output_folder, selection.models, prediction)


def ensemble(input_folders: Sequence[str | Path], output_folder: str | Path, **options: Any) -> list[Path]:
    """``autolung ensemble``: average saved probabilities of several runs into masks."""
    from autolung.inference.ensembling import ensemble_folders

    return ensemble_folders(input_folders, output_folder, **options)


def determine_postprocessing(prediction_folder: str | Path, reference_folder: str | Path, **options: Any) -> dict:
    """``autolung determine_postprocessing``: choose component rules for a folder of predictions."""
    from autolung.inference.postprocessing_folders import determine_postprocessing as determine

    return determine(prediction_folder, reference_folder, **options)


def apply_postprocessing(input_folder: str | Path, output_folder: str | Path, rules_file: str | Path,
                         overwrite: bool = False, progress: Any = None) -> list[Path]:
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


def export_model(dataset: str, root: DataRoot, configuration_folders: Sequence[str], output_zip: str | Path,
                 folds: Sequence[int] | None = None) -> Path:
    """``autolung export_model``: bundle plans, weights, postprocessing and a checksum manifest."""
    from autolung.inference.bundle import export_model as export

    return export(root.results_dataset(Path(dataset).name), configuration_folders, output_zip, folds)


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
            **options: Any) -> Path:
    """``autolung overlay``: a PNG montage of slices with prediction (and reference) outlines."""
    from autolung.io.images import read_image, read_label
    from autolung.visualization.overlay import render_overlay

    picture, geometry = read_image(image)
    expected = read_label(reference)[0] if reference is not None else None
    from autolung.provenance import mask_plans_digest

    options.setdefault("plans_digest", mask_plans_digest(mask))
    return render_overlay(picture, read_label(mask)[0], expected, output, spacing=geometry.spacing, **options)


def plot_overlays(dataset: str | Path, root: DataRoot, output_folder: str | Path,
                     configuration: str | None = None, planner: str | None = None, num_processes: int = 1,
                     num_slices: int = 6, progress: Any = None) -> list[Path]:
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


def download(name: str, root: DataRoot, **options: Any) -> Path:
    """``autolung download``: fetch a Medical Segmentation Decathlon task into raw/ (by name)."""
    from autolung.datasets_remote import install_dataset, resolve_remote_dataset

    return install_dataset(resolve_remote_dataset(name), root, **options)


def convert(kind: str, *args: Any, **kwargs: Any) -> Any:
    """``autolung convert KIND``: ``pairs``, ``slices``, ``layout`` or ``export`` (see autolung.convert)."""
    from autolung import convert as conversions

    functions = {"pairs": conversions.convert_pairs, "slices": conversions.convert_slices,
                 "layout": conversions.convert_layout, "export": conversions.export_pairs}
    if kind not in functions:
        raise ValueError(f"unknown conversion {kind!r}; one of {', '.join(functions)}")
    return functions[kind](*args, **kwargs)


def benchmark(settings: Any, root: DataRoot, report_dir: str | Path, **options: Any) -> Any:
    """``autolung benchmark``: the whole pipeline on several datasets, with reports."""
    from autolung.benchmarking.runner import run_benchmark

    return run_benchmark(settings, root, report_dir, **options)


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
