"""The README's main job: demo data → plan and preprocess → train → predict unseen cases → evaluate.

Every step calls the composition layer (:mod:`autolung.api`), as the CLI does, so the demo
exercises exactly what users run.
Finished steps are skipped on a rerun (each step is resumable on its own), so an interrupted demo
continues where it stopped.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from autolung import api
from autolung.demo_data import DEMO_DATASET_NAME, write_demo_dataset
from autolung.paths import DataRoot
from autolung.progress import ProgressReporter

logger = logging.getLogger(__name__)

CONFIGURATION = "3d_fullres"
FOLD = 0
# The CPU preset: a slimmer U-Net and a smaller patch, about 9x cheaper per step than the default
# plan (see planners/cpu.py), so minutes of CPU training buy hundreds of iterations.
PLANNER = "cpu"
UNSEEN_SEED_OFFSET = 1000
# Default training budgets. One demo step takes about 0.5 s on 2 cores with native bfloat16
# (AVX-512 BF16) and about 1.3 s in float32 on an AVX2-only CPU, where 5 minutes bought 200 steps
# and a tumour Dice of 0.78; the float32 default doubles the budget to reach the same training.
NATIVE_BF16_BUDGET_S = 300.0
FLOAT32_CPU_BUDGET_S = 600.0


@dataclass
class DemoOptions:
    """Knobs of the demo.

    Attributes:
        num_cases: training cases written to ``raw/Demo_LungCT``.
        num_unseen: extra cases, from another seed, that training never sees.
        seed: seed of the demo data.
        time_budget_s: wall-clock budget of the training; None: :func:`default_time_budget_s`.
        iters_per_epoch: iterations per (short) epoch, so progress is logged often.
        num_processes: processes for preprocessing.
        device: training and prediction device.
        mirror: test-time mirroring when predicting the unseen cases.
        progress: receives each stage's progress (the CLI passes one drawing bars); None: nothing.
        planner: the planner (``cpu`` by default; ``default`` for a GPU-sized plan).
    """

    num_cases: int = 20
    num_unseen: int = 4
    seed: int = 0
    time_budget_s: float | None = None
    iters_per_epoch: int = 25
    num_processes: int = 2
    device: str = "auto"
    mirror: bool = True
    progress: ProgressReporter | None = None
    planner: str = PLANNER


@dataclass
class DemoResult:
    """Where everything went, and the evaluation summary."""

    dataset_folder: Path
    fold_folder: Path
    predictions: Path
    summary_json: Path
    overlays: list[Path] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def demo_folder(data_root: DataRoot) -> Path:
    """``<root>/demo``: unseen cases, their predictions, overlays and the evaluation summary."""
    return data_root.root / "demo"


def _ensure_dataset(folder: Path, num_cases: int, seed: int) -> Path:
    if (folder / "dataset.json").is_file():
        logger.info("demo data already at %s, reused", folder)
        return folder
    if folder.exists():
        # dataset.json is written last, so a folder without it is an interrupted earlier write.
        shutil.rmtree(folder)
    return write_demo_dataset(folder, num_cases=num_cases, seed=seed)


def prepare_data(data_root: DataRoot, options: DemoOptions) -> tuple[Path, Path]:
    """Write the training set under raw/ and the unseen set under demo/ (both deterministic)."""
    dataset = _ensure_dataset(data_root.raw / DEMO_DATASET_NAME, options.num_cases, options.seed)
    unseen = _ensure_dataset(demo_folder(data_root) / "unseen", options.num_unseen,
                             options.seed + UNSEEN_SEED_OFFSET)
    return dataset, unseen


def plan_and_preprocess(dataset: Path, data_root: DataRoot, options: DemoOptions) -> None:
    # The plan is sized to the training budget when the planner does that (planner auto).
    budget = api.plan_budget(options.planner, options.time_budget_s or default_time_budget_s(options.device))
    api.plan(dataset, data_root, planner=options.planner, num_processes=options.num_processes,
             progress=options.progress, device=options.device, time_budget_s=budget)
    api.preprocess(dataset, data_root, configurations=[CONFIGURATION], num_processes=options.num_processes,
                   planner=options.planner, progress=options.progress)


def default_time_budget_s(device: str) -> float:
    """The demo's training budget when the user gives none.

    Args:
        device: "auto", "cpu", "cuda", ... as given to the demo.

    Returns:
        300 s where training runs in bfloat16 or on an accelerator, 600 s on a CPU that trains
        in float32 (no AVX-512 BF16 or AMX).
    """
    from autolung.training.hardware import autocast_dtype, resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cpu" and autocast_dtype(resolved, "auto") is None:
        return FLOAT32_CPU_BUDGET_S
    return NATIVE_BF16_BUDGET_S


def train(data_root: DataRoot, options: DemoOptions) -> Path:
    fold_folder = data_root.fold_folder(DEMO_DATASET_NAME, CONFIGURATION, FOLD, options.planner)
    if fold_folder.is_finished():
        logger.info("demo model already trained at %s, reused", fold_folder.path)
        return fold_folder.path
    budget = options.time_budget_s
    if budget is None:
        budget = default_time_budget_s(options.device)
        logger.info("training budget %.0f s, the default for %s", budget, options.device)
    return api.train(DEMO_DATASET_NAME, data_root, CONFIGURATION, FOLD, progress=options.progress, epochs=1000,
                     iters_per_epoch=options.iters_per_epoch, val_iters=5, time_budget_s=budget,
                     device=options.device, resume=fold_folder.is_resumable(),
                     seed=options.seed + 12345, planner=options.planner)


def predict_unseen(data_root: DataRoot, unseen: Path, options: DemoOptions) -> Path:
    output = demo_folder(data_root) / "predictions"
    device = "cpu" if options.device == "auto" else options.device
    api.predict(unseen / "imagesTr", output, data_root, dataset=DEMO_DATASET_NAME, configurations=[CONFIGURATION],
                folds=[FOLD], planner=options.planner, mirror=options.mirror, device=device)
    return output


def evaluate(data_root: DataRoot, unseen: Path, predictions: Path) -> tuple[dict, Path]:
    summary_json = demo_folder(data_root) / "evaluation" / "summary.json"
    summary = api.evaluate(unseen / "labelsTr", predictions, output_json=summary_json)
    return summary, summary_json


def draw_overlays(unseen: Path, predictions: Path, output: Path) -> list[Path]:
    written = []
    for image_path in sorted((unseen / "imagesTr").glob("*.nii.gz")):
        case_id = image_path.name.removesuffix(".nii.gz")
        prediction_path = predictions / image_path.name
        if not prediction_path.is_file():
            continue
        written.append(api.overlay(image_path, prediction_path, output / f"{case_id}.png",
                                   reference=unseen / "labelsTr" / image_path.name, title=case_id))
    return written


def run_demo(data_root: DataRoot, options: DemoOptions | None = None) -> DemoResult:
    """Run the whole demo; see the module docstring.

    Args:
        data_root: where raw/, preprocessed/, results/ and demo/ go.
        options: demo knobs (defaults: 20 training cases, 4 unseen, 5 minutes of training).

    Returns:
        Paths of everything written and the evaluation summary of the unseen cases.
    """
    options = options or DemoOptions()
    dataset, unseen = prepare_data(data_root, options)
    plan_and_preprocess(dataset, data_root, options)
    fold_folder = train(data_root, options)
    predictions = predict_unseen(data_root, unseen, options)
    summary, summary_json = evaluate(data_root, unseen, predictions)
    overlays = draw_overlays(unseen, predictions, demo_folder(data_root) / "overlays")
    return DemoResult(dataset, fold_folder, predictions, summary_json, overlays, summary)
