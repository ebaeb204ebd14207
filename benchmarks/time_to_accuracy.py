"""Benchmark: test Dice on held-out patients after a wall-clock training budget, autolung and nnU-Net v2.

Usage::

    .venv/bin/python benchmarks/time_to_accuracy.py run --set MSDLungTumourPatches2D --budget 5m
        --tool autolung:auto [--tool autolung:cpu --tool nnunet] [--train-arg=--loss=ce_dice --variant ce]
        [--plan-arg=--target-spacing --plan-arg=999 --plan-arg=2 --plan-arg=2]
        [--fold 0] [--work /tmp/tta] [--nnunet-venv PATH] [--results benchmarks/results/time_to_accuracy.json]
    .venv/bin/python benchmarks/time_to_accuracy.py report     # table + plot into docs/

Protocol (issue 12), for one set, split fold and budget:

1. The committed split ``benchmarks/splits/<set>.json`` (``benchmarks/make_splits.py``; by patient)
   gives the train and test cases. The test cases are never seen by either tool before prediction.
2. Inside the train part a tenth of the patients (at least one case) is the validation fold both tools
   watch while training (autolung ``splits.json`` fold 0 and nnU-Net ``splits_final.json`` fold 0 hold the same
   lists); nothing is chosen on it (both predict with their final checkpoint).
3. autolung: ``autolung plan_and_preprocess`` (its planner; ``auto`` also gets ``--time-budget``),
   ``autolung train -f 0 --time-budget B``, ``autolung predict -f 0`` on the test images.
   nnU-Net: its own ``plan_and_preprocess`` and a trainer subclass (``nnUNetTrainer_autolungBudget``,
   written into its package folder) that measures its first epochs and re-derives its epoch count and
   poly schedule so training ends inside B; ``nnUNetv2_predict -f 0 -chk checkpoint_final.pth``.
   JPEG sets are converted to PNG for nnU-Net (lossless: the decoded pixels are written as they are).
4. Both predictions are scored against the test labels by ``autolung evaluate`` (same metric code).
5. One record per run is appended to the results file (set, fold, budget, tool, variant, iterations,
   training time, Dice per class, machine), so nnU-Net runs need running once per set, fold and budget.

Planning and preprocessing are outside the budget for both tools (timed and recorded).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import make_splits  # noqa: E402

DATA = REPO / ".." / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results" / "time_to_accuracy.json"
FIGURE = REPO / "docs" / "figures" / "time_to_accuracy.png"
DOC = REPO / "docs" / "benchmarks.md"
DOC_BEGIN = "<!-- time_to_accuracy:begin -->"
DOC_END = "<!-- time_to_accuracy:end -->"
NNUNET_TRAINER = "nnUNetTrainer_autolungBudget"
NNUNET_IDS = {"FindingLungs2D": 901, "COVID_Infection2D": 902, "MSDLungTumourPatches2D": 903, "CXR_Lungs2D": 904,
              "Task04_Hippocampus": 905, "LIDCNodules3D": 906, "NSCLC_LungCT": 907}

NNUNET_TRAINER_SOURCE = r'''
import os
import time

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_autolungBudget(nnUNetTrainer):
    """nnUNetTrainer fitted into a wall-clock budget (autolung's time-to-accuracy benchmark).

    After each epoch the epoch count is re-derived from the mean epoch time so far, and the poly
    schedule's max_steps follows it, so the learning rate still decays to zero at the last epoch.
    """

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.budget_s = float(os.environ["AUTOLUNG_BUDGET_S"])
        self.num_iterations_per_epoch = int(os.environ.get("AUTOLUNG_ITERS", "250"))
        self.num_val_iterations_per_epoch = int(os.environ.get("AUTOLUNG_VAL_ITERS", "50"))
        self.num_epochs = 1000
        if "AUTOLUNG_TORCH_THREADS" in os.environ:  # its entry point sets all cores, ignoring pinning
            torch.set_num_threads(int(os.environ["AUTOLUNG_TORCH_THREADS"]))

    def run_training(self):
        self.on_train_start()
        start = time.perf_counter()
        while self.current_epoch < self.num_epochs:
            self.on_epoch_start()
            self.on_train_epoch_start()
            train_outputs = []
            for _ in range(self.num_iterations_per_epoch):
                train_outputs.append(self.train_step(next(self.dataloader_train)))
                if time.perf_counter() - start > self.budget_s:  # slow steps: stop mid-epoch, as autolung does
                    break
            spent = time.perf_counter() - start > self.budget_s
            self.on_train_epoch_end(train_outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                val_outputs = [self.validation_step(next(self.dataloader_val))
                               for _ in range(1 if spent else self.num_val_iterations_per_epoch)]
                self.on_validation_epoch_end(val_outputs)
            self.iterations_done = getattr(self, "iterations_done", 0) + len(train_outputs)
            self.print_to_log_file(f"training iterations so far: {self.iterations_done}")
            done = self.current_epoch + 1
            per_epoch = (time.perf_counter() - start) / done
            fitted = done if spent else max(done, int(self.budget_s // per_epoch))
            if fitted != self.num_epochs:
                self.num_epochs = fitted
                self.lr_scheduler.max_steps = fitted
            self.on_epoch_end()
        self.on_train_end()

    def perform_actual_validation(self, save_probabilities: bool = False):
        # The benchmark scores the test split; nnU-Net's own sliding-window pass over the
        # validation fold is outside the protocol (40 s per 48x48 patch on the loaded CPU).
        return
'''


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_budget(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match:
        raise SystemExit(f"cannot read budget {text!r} (e.g. 300, 5m, 1h)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


# Written into each tool's work folder when its run starts: its start time and machine, for a resumed run.
RUN_RECORD = "run.json"
CORES: dict[str, list[int]] = {}  # thread name -> the cores its tool's commands are pinned to (--pin)


def pinned_cores() -> list[int] | None:
    return CORES.get(threading.current_thread().name)


def thread_env(env: dict[str, str] | None) -> dict[str, str] | None:
    """``env`` with the thread counts of the pinned cores, when this tool is pinned."""
    cores = pinned_cores()
    if cores is None:
        return env
    count = str(len(cores))
    return dict(env if env is not None else os.environ, OMP_NUM_THREADS=count, MKL_NUM_THREADS=count,
                AUTOLUNG_TORCH_THREADS=count)


def run(command: list[str], log_file: Path, env: dict[str, str] | None = None, pin: bool = True) -> float:
    """Run ``command`` (output to ``log_file``); its wall time; exit with the log tail on failure.

    ``pin=False`` runs it on every core even in a paired run: for the steps outside the budget
    (planning, preprocessing, prediction), whose time is not compared.
    """
    cores = pinned_cores() if pin else None
    if cores is not None:  # taskset, not preexec_fn: the tools run from threads, where preexec_fn may deadlock
        command = ["taskset", "-c", ",".join(map(str, cores)), *command]
    start = time.perf_counter()
    with open(log_file, "w") as handle:
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT,
                                env=thread_env(env) if pin else env)
    if result.returncode != 0:
        raise SystemExit(f"failed (exit {result.returncode}): {' '.join(command)}\n{log_file.read_text()[-3000:]}")
    return time.perf_counter() - start


# ----------------------------------------------------------------------------------------- data layout
class SetFiles:
    """The files of one raw set (nnU-Net v2 raw or Decathlon layout) by case id."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta = json.loads((folder / "dataset.json").read_text())
        self.decathlon = "training" in self.meta and "file_ending" not in self.meta
        self.ending = ".nii.gz" if self.decathlon else self.meta["file_ending"]

    @property
    def default_configuration(self) -> str:
        """nnU-Net's configuration for the set: 3d_fullres for volumes, 2d for images."""
        return "3d_fullres" if self.ending == ".nii.gz" else "2d"

    def images(self, case: str) -> list[Path]:
        if self.decathlon:
            return [self.folder / "imagesTr" / f"{case}.nii.gz"]
        return sorted((self.folder / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9]{self.ending}"))

    def label(self, case: str) -> Path:
        """The case's label; JPEG sets keep lossless labels (COVID_Infection2D: .png beside .jpg images)."""
        same = self.folder / "labelsTr" / f"{case}{self.ending}"
        if same.exists():
            return same
        found = sorted((self.folder / "labelsTr").glob(f"{case}.*"))
        if not found:
            raise SystemExit(f"no label for case {case} in {self.folder / 'labelsTr'}")
        return found[0]

    def label_ending(self, case: str) -> str:
        return "".join(self.label(case).suffixes)

    def labels(self) -> dict[str, int]:
        labels = self.meta.get("labels", {})
        if self.decathlon:  # {"0": "background", "1": "anterior"}
            return {name: int(value) for value, name in labels.items()}
        return {name: int(value) for name, value in labels.items()}

    def channels(self) -> dict[str, str]:
        return self.meta.get("channel_names") or self.meta.get("modality") or {"0": "CT"}


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source.resolve())


def write_nnunet_raw(files: SetFiles, cases: list[str], target: Path, png_from_jpeg: bool) -> None:
    """``cases`` as an nnU-Net v2 raw set in ``target`` (links; JPEG decoded and written as PNG)."""
    ending = ".png" if png_from_jpeg else files.ending
    for case in cases:
        for index, image in enumerate(files.images(case)):
            out = target / "imagesTr" / f"{case}_{index:04d}{ending}"
            _copy_or_convert(image, out, png_from_jpeg)
        label_ending = ending if png_from_jpeg else files.label_ending(case)
        _copy_or_convert(files.label(case), target / "labelsTr" / f"{case}{label_ending}", png_from_jpeg)
    meta = {"channel_names": files.channels(), "labels": files.labels(), "numTraining": len(cases),
            "file_ending": ending, "name": files.folder.name}
    (target / "dataset.json").write_text(json.dumps(meta, indent=1))


def _copy_or_convert(source: Path, target: Path, png_from_jpeg: bool) -> None:
    if not png_from_jpeg:
        link(source, target)
        return
    import numpy as np
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(Image.open(source))  # the decoded JPEG pixels, written unchanged (PNG is lossless)
    Image.fromarray(pixels).save(target)


def test_inputs(files: SetFiles, cases: list[str], work: Path, png_from_jpeg: bool) -> tuple[Path, Path]:
    """Folders of the test images (``<case>_0000``) and of their reference labels."""
    images, labels = work / "test_images", work / "test_labels"
    shutil.rmtree(images, ignore_errors=True)
    shutil.rmtree(labels, ignore_errors=True)
    ending = ".png" if png_from_jpeg else files.ending
    for case in cases:
        for index, image in enumerate(files.images(case)):
            _copy_or_convert(image, images / f"{case}_{index:04d}{ending}", png_from_jpeg)
        label_ending = ending if png_from_jpeg else files.label_ending(case)
        _copy_or_convert(files.label(case), labels / f"{case}{label_ending}", png_from_jpeg)
    return images, labels


def validation_split(train: list[str], pattern: str) -> dict[str, list[str]]:
    """Fold 0 inside the train part: a tenth of its patients validate (both tools use the same lists)."""
    if len(train) < 10:  # too few to hold any out (NSCLC: 2 scans): watch one training case
        return {"train": list(train), "val": [train[0]]}
    inner = make_splits.split_by_patient(train, pattern, test_fraction=0.1)
    return {"train": inner["train"], "val": inner["test"]}


# ----------------------------------------------------------------------------------------- autolung
def trained_fold(results: Path, planner: str) -> Path:
    """The one ``<configuration>__<planner>/fold_0`` folder a run trained under ``results``."""
    folds = sorted(results.glob(f"*__{planner}/fold_0"))
    if len(folds) != 1:
        raise SystemExit(f"expected one trained fold_0 of planner {planner} under {results}, found {len(folds)}")
    return folds[0]


def run_autolung(set_name: str, planner: str, budget_s: float, fold: int, work: Path, train_args: list[str],
                 configuration: str | None, iterations: int | None = None, plan_args: list[str] = (),
                 extra_checkpoints: list[str] = ()) -> dict:
    files = SetFiles(DATA / set_name)
    split = make_splits.load_split(set_name, fold)
    record = json.loads((REPO / "benchmarks" / "splits" / f"{set_name}.json").read_text())
    inner = validation_split(split["train"], record["patient_pattern"])
    shutil.rmtree(work, ignore_errors=True)
    root, raw = work / "root", work / "root" / "raw" / set_name
    write_nnunet_raw(files, split["train"], raw, png_from_jpeg=False)  # autolung reads JPEG as it is
    images, labels = test_inputs(files, split["test"], work, png_from_jpeg=False)
    autolung = [sys.executable, "-m", "autolung_cli"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    budget = f"{budget_s:g}s"
    plan_cmd = [*autolung, "plan_and_preprocess", "-d", set_name, "--root", str(root), "--planner", planner,
                "--no-progress"]
    if planner == "auto":
        plan_cmd += ["--time-budget", budget]
    if configuration:
        plan_cmd += ["-c", configuration]
    plan_cmd += list(plan_args)
    # Pinned like training: the throughput probe in planning must measure the core and threads training gets.
    plan_s = run(plan_cmd, work / "plan.log", env)
    plans = json.loads(next((root / "preprocessed" / set_name).glob("plans*.json")).read_text())
    (root / "preprocessed" / set_name / "splits.json").write_text(json.dumps([inner], indent=1))
    # No configuration named: the default command line, which trains the one the plans recommend.
    named = ["-c", configuration] if configuration else []
    train_cmd = [*autolung, "train", "-d", set_name, *named, "-f", "0", "--root", str(root),
                 "--planner", planner, "--no-final-validation", *train_args]
    if pinned_cores() is not None:
        train_cmd += ["--threads", str(len(pinned_cores()))]
    # A fixed iteration count (ablations on a machine whose load changes the step time tenfold) or the budget.
    train_cmd += (["--epochs", "1", "--iters-per-epoch", str(iterations), "--val-iters", "10"] if iterations
                  else ["--time-budget", budget])
    log(f"autolung:{planner} {set_name} {configuration or 'recommended configuration'} training {budget} "
        f"({' '.join(train_args) or 'defaults'})")
    train_s = run(train_cmd, work / "train.log", env)
    fold_folder = trained_fold(root / "results" / set_name, planner)
    configuration = fold_folder.parent.name.partition("__")[0]
    epochs = [json.loads(line) for line in (fold_folder / "training_log.jsonl").read_text().splitlines() if line]
    predictions = work / "predictions"
    predict = [*autolung, "predict", "-i", str(images), "-d", set_name, "-c", configuration, "-f", "0", "--planner",
               planner, "--root", str(root), "--no-progress"]
    predict_s = run([*predict, "-o", str(predictions)], work / "predict.log", env, pin=False)
    dice = evaluate(labels, predictions, files, work, env)
    # The checkpoint ablation: the same training, predicted from another of its checkpoints.
    by_checkpoint = {}
    for checkpoint in extra_checkpoints:
        folder = work / f"predictions_{checkpoint}"
        run([*predict, "-o", str(folder), "--checkpoint", checkpoint], work / f"predict_{checkpoint}.log", env,
            pin=False)
        by_checkpoint[checkpoint] = evaluate(labels, folder, files, work, env)
    cfg = plans["configurations"][configuration]
    return {"iterations": int(sum(e.get("iterations", 0) for e in epochs)),
            "train_loop_s": round(sum(float(e.get("epoch_time_s", e.get("time_s", 0.0))) for e in epochs), 1),
            "train_process_s": round(train_s, 1), "plan_preprocess_s": round(plan_s, 1),
            "predict_s": round(predict_s, 1), "configuration": configuration, "dice": dice,
            **({"dice_by_checkpoint": by_checkpoint} if by_checkpoint else {}),
            "plan": {"patch": cfg["patch_size"], "batch": cfg["batch_size"], "spacing": cfg["spacing"],
                     "features": cfg["architecture"]["features_per_stage"]}}


def evaluate(labels: Path, predictions: Path, files: SetFiles, work: Path, env: dict[str, str]) -> dict[str, float]:
    """Dice per class (mean over test cases) and their mean, by ``autolung evaluate``."""
    values = sorted(v for v in files.labels().values() if v > 0)
    summary_path = work / f"summary_{predictions.name}.json"
    command = [sys.executable, "-m", "autolung_cli", "evaluate", "-r", str(labels), "-p", str(predictions),
               "-o", str(summary_path)]
    for value in values:
        command += ["-l", str(value)]
    run(command, work / f"evaluate_{predictions.name}.log", env)
    summary = json.loads(summary_path.read_text())
    names = {str(v): n for n, v in files.labels().items()}
    dice = {names.get(key, key): _finite(stats["dice"]["mean"]) for key, stats in summary["per_class"].items()}
    present = [v for v in dice.values() if v is not None]
    dice["mean"] = round(sum(present) / len(present), 4) if present else None
    return dice


def _finite(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else round(float(value), 4)


# ----------------------------------------------------------------------------------------- nnU-Net
def nnunet_environment(work: Path) -> dict[str, str]:
    return dict(os.environ, nnUNet_raw=str(work / "nnUNet_raw"), nnUNet_preprocessed=str(work / "nnUNet_preprocessed"),
                nnUNet_results=str(work / "nnUNet_results"), nnUNet_n_proc_DA="2", OMP_NUM_THREADS="2",
                MKL_NUM_THREADS="2")


def install_nnunet_trainer(venv: Path) -> None:
    """Write the budget trainer into nnU-Net's trainer package (see ../shared/reference/README.md)."""
    package = next((venv / "lib").glob("python3*/site-packages/nnunetv2/training/nnUNetTrainer"))
    target = package / f"{NNUNET_TRAINER}.py"
    if not target.is_file() or target.read_text() != NNUNET_TRAINER_SOURCE:
        target.write_text(NNUNET_TRAINER_SOURCE)


def nnunet_log_epochs(results: Path) -> tuple[int, float]:
    """(training iterations, seconds of the training loop) from nnU-Net's training log."""
    logs = sorted(results.rglob("training_log_*.txt"))
    if not logs:
        return 0, math.nan
    text = logs[-1].read_text()
    durations = [float(x) for x in re.findall(r"Epoch time: ([0-9.]+) s", text)]
    counted = re.findall(r"training iterations so far: (\d+)", text)
    return (int(counted[-1]) if counted else len(durations) * 50), sum(durations)


def run_nnunet(set_name: str, budget_s: float, fold: int, work: Path, venv: Path, configuration: str | None,
               predictor: str = "nnunet", reuse_training: bool = False, predict_mode: str = "full") -> dict:
    """Plan, train within ``budget_s``, predict the test cases and score nnU-Net v2.

    Args:
        predictor: "nnunet" (``nnUNetv2_predict``) or "autolung": ``autolung predict --model`` on
            nnU-Net's model folder, ``--mode full --precision float32`` (every mirroring, step 0.5,
            nnU-Net's window weights), which agrees with nnU-Net's own masks on 99.97 % or more of
            the foreground voxels (``benchmarks/nnunet_models.py``) and runs LIDC crops in a
            fraction of the time; prediction is outside the budget either way.
        reuse_training: keep a finished training in ``work`` (from a run whose prediction was
            stopped) and only predict and score.
        predict_mode: with ``predictor="autolung"``, its ``--mode``: ``full`` (above) or ``fast``
            (body crop, no mirroring, step 0.75), for whole CTs whose full-mode prediction would
            take longer than the training.
    """
    files = SetFiles(DATA / set_name)
    configuration = configuration or files.default_configuration
    dataset_id = NNUNET_IDS[set_name]
    name = f"Dataset{dataset_id}_{set_name}"
    trained = nnunet_model_folder(work, set_name, configuration)
    if reuse_training:
        log(f"nnunet {set_name} {configuration}: reusing the training in {work}")
        plan_s = train_s = math.nan
        images, labels = work / "test_images", work / "test_labels"
    else:
        plan_s, train_s, images, labels = _nnunet_train(set_name, budget_s, fold, work, venv, configuration)
    iterations, loop_s = nnunet_log_epochs(work / "nnUNet_results")
    predictions = work / "predictions"
    shutil.rmtree(predictions, ignore_errors=True)
    if predictor == "autolung":
        predict_s = run([sys.executable, "-m", "autolung_cli", "predict", "-i", str(images), "-o", str(predictions),
                         "--model", str(trained), "-f", "0", "--checkpoint", "final", "--mode", predict_mode,
                         "--precision", "float32", "--no-progress"], work / "predict.log",
                        dict(os.environ, PYTHONPATH=str(REPO)), pin=False)
    else:
        predict_s = run([str(venv / "bin" / "nnUNetv2_predict"), "-i", str(images), "-o", str(predictions),
                         "-d", str(dataset_id), "-c", configuration, "-f", "0", "-tr", NNUNET_TRAINER,
                         "-chk", "checkpoint_final.pth", "-device", "cpu", "-npp", "1", "-nps", "1"],
                        work / "predict.log", nnunet_environment(work), pin=False)
    dice = evaluate(labels, predictions, files, work, dict(os.environ, PYTHONPATH=str(REPO)))
    plans = json.loads((work / "nnUNet_preprocessed" / name / "nnUNetPlans.json").read_text())
    cfg = plans["configurations"][configuration]
    arch = cfg.get("architecture", {}).get("arch_kwargs", {})
    return {"iterations": iterations, "train_loop_s": round(loop_s, 1), "train_process_s": _finite(train_s),
            "plan_preprocess_s": _finite(plan_s), "predict_s": round(predict_s, 1),
            "predicted_by": "nnUNetv2_predict" if predictor == "nnunet" else
            f"autolung predict --model (nnU-Net's folder) --mode {predict_mode} --precision float32",
            "configuration": configuration, "dice": dice, "converted_to_png": files.ending == ".jpg",
            "plan": {"patch": cfg["patch_size"], "batch": cfg["batch_size"], "spacing": cfg["spacing"],
                     "features": arch.get("features_per_stage")}}


def nnunet_model_folder(work: Path, set_name: str, configuration: str) -> Path:
    """nnU-Net's trained model folder in a run's work folder."""
    return (work / "nnUNet_results" / f"Dataset{NNUNET_IDS[set_name]}_{set_name}"
            / f"{NNUNET_TRAINER}__nnUNetPlans__{configuration}")


def finished_nnunet_run(work: Path, set_name: str, configuration: str) -> dict:
    """The start record of a run in ``work`` whose nnU-Net training finished; exits naming what is missing."""
    record = work / RUN_RECORD
    checkpoint = nnunet_model_folder(work, set_name, configuration) / "fold_0" / "checkpoint_final.pth"
    for needed in (record, checkpoint):
        if not needed.is_file():
            raise SystemExit(f"--reuse-nnunet-training: {needed} is missing, so there is no finished training in "
                             f"{work} to reuse; run without it to train")
    return json.loads(record.read_text())


def _clear_work(work: Path) -> None:
    """Empty ``work`` for a new training, keeping the run's start record."""
    work.mkdir(parents=True, exist_ok=True)
    for entry in work.iterdir():
        if entry.name == RUN_RECORD:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _nnunet_train(set_name: str, budget_s: float, fold: int, work: Path, venv: Path,
                  configuration: str) -> tuple[float, float, Path, Path]:
    """nnU-Net's raw folder, plan, preprocessing and budgeted training: (plan s, train s, test images, labels)."""
    files = SetFiles(DATA / set_name)
    split = make_splits.load_split(set_name, fold)
    record = json.loads((REPO / "benchmarks" / "splits" / f"{set_name}.json").read_text())
    inner = validation_split(split["train"], record["patient_pattern"])
    _clear_work(work)
    png = files.ending == ".jpg"  # nnU-Net reads no JPEG: its copy is decoded and saved as PNG (lossless)
    dataset_id = NNUNET_IDS[set_name]
    name = f"Dataset{dataset_id}_{set_name}"
    write_nnunet_raw(files, split["train"], work / "nnUNet_raw" / name, png_from_jpeg=png)
    images, labels = test_inputs(files, split["test"], work, png_from_jpeg=png)
    env = nnunet_environment(work)
    bin_ = venv / "bin"
    plan_s = run([str(bin_ / "nnUNetv2_plan_and_preprocess"), "-d", str(dataset_id), "-c", configuration,
                  "-np", "2", "-npfp", "2"], work / "plan.log", env, pin=False)
    (work / "nnUNet_preprocessed" / name / "splits_final.json").write_text(json.dumps([inner], indent=1))
    install_nnunet_trainer(venv)
    # Short epochs so the epoch count can follow the budget closely (the schedule is per epoch).
    env = dict(env, AUTOLUNG_BUDGET_S=str(budget_s), AUTOLUNG_ITERS="50", AUTOLUNG_VAL_ITERS="10")
    if pinned_cores() is not None and len(pinned_cores()) == 1:
        # On one core augmentation runs in the training process, as autolung's does there (0 workers);
        # its planner needs a positive count, so only training gets 0.
        env["nnUNet_n_proc_DA"] = "0"
    log(f"nnunet {set_name} {configuration} training {budget_s:g}s")
    train_s = run([str(bin_ / "nnUNetv2_train"), str(dataset_id), configuration, "0", "-tr", NNUNET_TRAINER,
                   "-device", "cpu"], work / "train.log", env)
    return plan_s, train_s, images, labels


# ----------------------------------------------------------------------------------------- results
def machine() -> dict:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", flags)
    return {"cpu": model.group(1) if model else platform.processor(), "cores": os.cpu_count(),
            "avx512": "avx512f" in flags, "load_before": round(os.getloadavg()[0], 2),
            "note": "shared with other jobs", "autolung_commit": autolung_commit()}


def autolung_commit() -> str | None:
    """The benchmarked checkout's commit (``+`` when it has uncommitted changes); None outside git."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+" if dirty else "")


def append_result(path: Path, result: dict) -> None:
    """Append one record to the results file (written to a temporary name, then renamed)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    lock_name = "autolung_tta_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12] + ".lock"
    with open(Path(tempfile.gettempdir()) / lock_name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # runs of several tools may finish at once
        records = json.loads(path.read_text()) if path.is_file() else []
        records.append(result)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=1) + "\n")
        tmp.replace(path)


def _dice_text(record: dict) -> str:
    dice = record["dice"]
    parts = [f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in dice.items() if k != "mean"]
    return ", ".join(parts)


def _cores(record: dict) -> str:
    pinned = record["machine"].get("pinned_cores")
    return f"core {pinned[0]}, paired" if pinned else f"{record['machine'].get('cores')} (shared)"


def report_rows(records: list[dict]) -> list[str]:
    rows = ["| set | fold | budget or length | tool | variant | test Dice (mean) | per class | iterations | loop s | "
            "configuration: patch, batch, widths | cores | load (1 min) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["set"], r["fold"], r["budget_s"] or 0, r["tool"], r["variant"],
                                            r.get("started", ""))):
        plan = r.get("plan", {})
        length = f"{r['budget_s'] / 60:g} min" if r["budget_s"] else f"{r.get('fixed_iterations')} iterations"
        widths = plan.get("features")
        mean = r["dice"].get("mean")
        rows.append(f"| {r['set']} | {r['fold']} | {length} | {r['tool']} | {r['variant']} | "
                    f"{'-' if mean is None else f'{mean:.3f}'} | {_dice_text(r)} | {r['iterations']} | "
                    f"{r['train_loop_s']} | {r.get('configuration', '?')}: {plan.get('patch')}, {plan.get('batch')}, "
                    f"{widths[0] if widths else '?'}..{widths[-1] if widths else '?'} | {_cores(r)} | "
                    f"{r['machine'].get('load_before')} → {r.get('load_after')} |")
    return rows


def paired_runs(records: list[dict]) -> list[tuple[dict, dict]]:
    """(autolung, nnU-Net) records that ran at the same time, each on its own core."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r["machine"].get("pinned_cores") and r["budget_s"]:
            groups.setdefault((r["set"], r["fold"], r["budget_s"], r.get("started", "")[:16]), []).append(r)
    pairs = []
    for members in groups.values():
        ours = [r for r in members if r["tool"].startswith("autolung:")]
        theirs = [r for r in members if r["tool"] == "nnunet"]
        if ours and theirs:
            pairs.append((ours[0], theirs[0]))
    return sorted(pairs, key=lambda pair: (pair[0]["set"], pair[0]["budget_s"], pair[0].get("started", "")))


def pair_rows(records: list[dict]) -> list[str]:
    rows = ["| set | fold | budget | started (UTC), autolung commit | autolung (planner, configuration) | "
            "autolung Dice | nnU-Net Dice | "
            "difference | autolung / nnU-Net iterations | rare class (autolung / nnU-Net) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for ours, theirs in paired_runs(records):
        a, b = ours["dice"].get("mean"), theirs["dice"].get("mean")
        classes = [k for k in ours["dice"] if k != "mean"]
        rare = ""
        if len(classes) > 1:
            # the class both tools learned least (consolidation in COVID_Infection2D)
            lowest = min(classes, key=lambda k: (ours["dice"].get(k) or 0.0) + (theirs["dice"].get(k) or 0.0))
            rare = f"{lowest}: {ours['dice'].get(lowest) or 0:.3f} / {theirs['dice'].get(lowest) or 0:.3f}"
        when = f"{ours.get('started', '?')[:16].replace('T', ' ')}, {ours['machine'].get('autolung_commit') or '?'}"
        rows.append(f"| {ours['set']} | {ours['fold']} | {ours['budget_s'] / 60:g} min | {when} | "
                    f"{ours['tool'].split(':', 1)[1]}, "
                    f"{ours.get('configuration', '?')} | "
                    f"{a:.3f} | {b:.3f} | {a - b:+.3f} | {ours['iterations']} / {theirs['iterations']} | {rare} |")
    return rows


def latest_pair_rows(records: list[dict]) -> list[str]:
    """The latest pair of each set, fold and budget (the current defaults' standing), and the mean difference."""
    latest: dict[tuple, tuple[dict, dict]] = {}
    for ours, theirs in paired_runs(records):  # sorted by start: a later pair replaces an earlier one
        latest[(ours["set"], ours["fold"], ours["budget_s"])] = (ours, theirs)
    rows = ["| set | fold | budget | autolung Dice | nnU-Net Dice | difference |", "|---|---|---|---|---|---|"]
    differences = []
    for (set_name, fold, budget_s), (ours, theirs) in sorted(latest.items()):
        a, b = ours["dice"]["mean"], theirs["dice"]["mean"]
        differences.append(a - b)
        rows.append(f"| {set_name} | {fold} | {budget_s / 60:g} min | {a:.3f} | {b:.3f} | {a - b:+.3f} |")
    rows.append(f"| **mean of {len(differences)}** | | | | | **{sum(differences) / len(differences):+.3f}**, "
                f"lowest {min(differences):+.3f} |")
    return rows


def plot_lines(records: list[dict], set_name: str) -> dict[str, list[tuple[float, float]]]:
    """Per tool (and variant): (budget in minutes, mean test Dice) of the paired runs on ``set_name``,
    the latest run per budget (records are in run order: a later commit's defaults supersede an earlier one's)."""
    lines: dict[str, dict[float, float]] = {}
    for r in records:
        if (r["set"] == set_name and r["budget_s"] and r["dice"].get("mean") is not None
                and r["machine"].get("pinned_cores")):  # only the paired runs compare
            key = r["tool"] if r["variant"] == "defaults" else f"{r['tool']} [{r['variant']}]"
            lines.setdefault(key, {})[r["budget_s"] / 60] = r["dice"]["mean"]
    return {key: sorted(points.items()) for key, points in lines.items()}


def draw_plot(records: list[dict], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = sorted({r["set"] for r in records})
    figure, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.4), squeeze=False)
    for axis, set_name in zip(axes[0], sets):
        for key, points in sorted(plot_lines(records, set_name).items()):
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=key)
        axis.set_title(set_name, fontsize=9)
        axis.set_xlabel("training budget (min)")
        axis.set_ylabel("test Dice (mean of classes)")
        if axis.get_lines():  # a set with no paired run yet has nothing to name
            axis.legend(fontsize=7)
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    plt.close(figure)


def command_report(args: argparse.Namespace) -> None:
    records = json.loads(args.results.read_text()) if args.results.is_file() else []
    if not records:
        raise SystemExit(f"no results in {args.results}")
    draw_plot(records, FIGURE)
    section = "\n".join([DOC_BEGIN, "", "Paired runs (autolung and nnU-Net at the same time, each pinned to its own core):",
                         "", *pair_rows(records), "",
                         "The latest pair of each set, fold and budget (the standing of the current defaults):", "",
                         *latest_pair_rows(records), "", "Every run:", "", *report_rows(records), "",
                         f"![time to accuracy](figures/{FIGURE.name})", "", DOC_END])
    text = DOC.read_text()
    if DOC_BEGIN in text:
        text = text[: text.index(DOC_BEGIN)] + section + text[text.index(DOC_END) + len(DOC_END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)
    print(f"wrote {FIGURE} and the table in {DOC}")


def command_run(args: argparse.Namespace) -> None:
    if not args.pin:
        for tool in args.tool:
            run_tool(args, tool)
        return
    # Paired runs: every tool at the same time, each on its own core, so whatever else loads the
    # machine loads both alike (wall-clock budgets on a shared 2-core machine are otherwise void).
    cores = sorted(os.sched_getaffinity(0))
    if len(args.tool) > len(cores):
        raise SystemExit(f"--pin needs a core per tool: {len(args.tool)} tools, {len(cores)} cores")
    failures: list[str] = []

    def work(tool: str) -> None:
        try:
            run_tool(args, tool)
        except BaseException as error:  # SystemExit from run() included: report, let the others finish
            failures.append(f"{tool}: {error}")

    threads = []
    for index, tool in enumerate(args.tool):
        name = f"tool-{index}"
        CORES[name] = [cores[index]]
        threads.append(threading.Thread(target=work, args=(tool,), name=name))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit("\n".join(failures))


def run_tool(args: argparse.Namespace, tool: str) -> None:
    budget_s = parse_budget(args.budget)
    if True:
        length = f"{args.iterations}it" if args.iterations else f"{int(budget_s)}s"
        work = args.work / f"{args.set}_f{args.fold}_{length}_{tool.replace(':', '_')}_{args.variant}"
        work.mkdir(parents=True, exist_ok=True)
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        info = machine()
        reused = tool == "nnunet" and args.reuse_nnunet_training
        if reused:  # the record keeps the run's own start, so it still pairs with the autolung run beside it
            earlier = finished_nnunet_run(work, args.set,
                                          args.configuration or SetFiles(DATA / args.set).default_configuration)
            started, info = earlier["started"], {**earlier["machine"], "resumed": started}
        else:
            if pinned_cores() is not None:
                info["pinned_cores"] = pinned_cores()
                info["note"] = "paired run: every tool at the same time, each pinned to its own core"
            (work / RUN_RECORD).write_text(json.dumps({"started": started, "machine": info}))
        if tool.startswith("autolung:"):
            outcome = run_autolung(args.set, tool.split(":", 1)[1], budget_s, args.fold, work, args.train_arg,
                                   args.configuration, args.iterations, args.plan_arg,
                                   args.extra_checkpoint)
        elif tool == "nnunet":
            outcome = run_nnunet(args.set, budget_s, args.fold, work, args.nnunet_venv, args.configuration,
                                 args.nnunet_predictor, reused, args.nnunet_predict_mode)
        else:
            raise SystemExit(f"unknown tool {tool!r}: autolung:<planner> or nnunet")
        result = {"set": args.set, "fold": args.fold, "budget_s": None if args.iterations else budget_s,
                  "fixed_iterations": args.iterations, "tool": tool, "variant": args.variant,
                  "train_args": args.train_arg, "plan_args": args.plan_arg, "started": started, "machine": info,
                  "load_after": round(os.getloadavg()[0], 2), **outcome}
        append_result(args.results, result)
        log(f"{tool} [{args.variant}] {args.set} {length}: Dice {outcome['dice']}, "
            f"{outcome['iterations']} iterations in {outcome['train_loop_s']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="train, predict and score one set at one budget")
    run_parser.add_argument("--set", required=True, choices=sorted(NNUNET_IDS))
    run_parser.add_argument("--budget", required=True, help="wall-clock training budget: 300, 5m, 1h")
    run_parser.add_argument("--tool", action="append", required=True,
                            help="autolung:<planner> (auto, cpu, default, ...) or nnunet; repeatable")
    run_parser.add_argument("--fold", type=int, default=0, help="split fold (NSCLC_LungCT: 0-2)")
    run_parser.add_argument("--configuration", help="default: 2d for 2D sets, 3d_fullres otherwise")
    run_parser.add_argument("--train-arg", action="append", default=[],
                            help="extra 'autolung train' argument, e.g. --train-arg=--loss=ce_dice")
    run_parser.add_argument("--plan-arg", action="append", default=[],
                            help="extra 'autolung plan_and_preprocess' argument, e.g. --plan-arg=--target-spacing "
                                 "(each value its own --plan-arg)")
    run_parser.add_argument("--variant", default="defaults", help="name of the ablation variant")
    run_parser.add_argument("--iterations", type=int,
                            help="train this many iterations instead of a budget (autolung; recipe ablations "
                                 "on a loaded machine); --budget is then only the planning budget")
    run_parser.add_argument("--extra-checkpoint", action="append", default=[], choices=("best", "weight_ema"),
                            help="also predict autolung's test cases from this checkpoint of the same training "
                                 "(recorded as dice_by_checkpoint; the record's Dice stays the final checkpoint's; "
                                 "weight_ema needs --train-arg=--weight-ema=DECAY)")
    run_parser.add_argument("--pin", action="store_true",
                            help="run the tools at the same time, each pinned to its own core with one thread")
    run_parser.add_argument("--nnunet-predictor", choices=("nnunet", "autolung"), default="nnunet",
                            help="who predicts the test cases with nnU-Net's trained model: nnUNetv2_predict, or "
                                 "autolung predict --model in float32 full mode (far faster on LIDC crops)")
    run_parser.add_argument("--nnunet-predict-mode", choices=("full", "fast"), default="full",
                            help="with --nnunet-predictor autolung: its --mode (fast for whole CTs, whose full "
                                 "prediction takes longer than the training)")
    run_parser.add_argument("--reuse-nnunet-training", action="store_true",
                            help="keep nnU-Net's finished training in the work folder (a run whose prediction was "
                                 "stopped): only predict and score; the record keeps that run's start and machine")
    run_parser.add_argument("--work", type=Path, default=Path("/tmp/autolung_tta"))
    run_parser.add_argument("--results", type=Path, default=RESULTS)
    run_parser.add_argument("--nnunet-venv", type=Path,
                            default=Path(os.environ.get("NNUNET_VENV", "~/.cache/nnunet-reference-venv")).expanduser())
    report_parser = sub.add_parser("report", help="table and plot into docs/benchmarks.md and docs/figures")
    report_parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.command == "run":
        command_run(args)
    else:
        command_report(args)


if __name__ == "__main__":
    main()
