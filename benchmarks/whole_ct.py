"""Whole chest CT prediction on a CPU: time, peak memory and per-class Dice of every speed lever.

A ``cpu``-planner 3d_fullres model (or another, ``--configuration``/``--planner``) is trained (or
reused) on two of the three NSCLC-Radiomics scans in ``../shared/data/NSCLC_LungCT`` (fold
``all`` of a copy that leaves one scan out), then the held-out whole scan is predicted through the real command line (``autolung predict``), once per
lever setting, from the command to the written mask. Each run's wall time and peak memory (PSS of
the process tree) are measured, and its CPU time (user + system of the process tree, less
sensitive than wall time to other jobs on a shared machine); each mask is scored per class (lung, tumour) against the
reference, and against the ``full`` mode's mask (the reference setting: every mirroring, step 0.5,
whole volume), side by side in one table.

The ``full`` mode of a whole scan takes many minutes on a 2-core CPU. ``--region Z Y X`` runs the
full-mode reference (and, side by side, other settings) on a region around the tumour instead, so
the accuracy comparison stays side by side even when the whole-scan full run does not fit.

``--nnunet`` adds nnU-Net v2 side by side on one model: nnU-Net (the reference environment,
``../shared/reference``, ``NNUNET_VENV``) plans and briefly trains its own 3d_fullres model on the
same two scans (fold ``all``; the comparison is about running the same weights, not their quality),
then ``nnUNetv2_predict -device cpu`` and ``autolung predict --model <that folder>`` predict the
held-out whole scan, each with the options of ``--nnunet-settings`` (nnU-Net: ``notta`` runs
``--disable_tta``, ``tta`` every mirroring; autolung: any of the settings above, in the
precision ``auto`` picks and in float32). Masks are scored per class and against nnU-Net's mask.

Usage::

    .venv/bin/python benchmarks/whole_ct.py WORK [--held-out lung1_003] [--budget 8m] [--threads 2]
        [--settings fast,no_mirror,mirror_x_fast,full] [--json out.json]
        [--nnunet --nnunet-settings nnunet_notta,fast,no_mirror,fast_float32]
    .venv/bin/python benchmarks/whole_ct.py WORK --roi-bound    # coarse-to-fine's ceiling, labels only
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict import run_measured  # noqa: E402  (process-tree PSS sampling)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "NSCLC_LungCT"
DATASET = "NSCLC_LOO"
PLANNER = "cpu"
CONFIGURATION = "3d_fullres"
CLASSES = {"lung": 1, "tumour": 2}
SETTINGS = {
    "full": ["--mode", "full"],
    "fast": ["--mode", "fast"],
    "no_mirror": ["--mode", "full", "--mirror-axes", "none"],
    "no_mirror_crop": ["--mode", "full", "--mirror-axes", "none", "--crop-to-body"],
    "no_mirror_skip": ["--mode", "full", "--mirror-axes", "none", "--skip-empty-windows"],
    "fast_mirror_x": ["--mode", "fast", "--mirror-axes", "x"],
    "fast_mirror_yx": ["--mode", "fast", "--mirror-axes", "yx"],
    "fast_step_0.6": ["--mode", "fast", "--step-size", "0.6"],
    "fast_step_0.75": ["--mode", "fast", "--step-size", "0.75"],
    "fast_step_1": ["--mode", "fast", "--step-size", "1.0"],
    "full_step_0.75": ["--mode", "full", "--step-size", "0.75"],
    "full_crop_skip": ["--mode", "full", "--crop-to-body", "--skip-empty-windows"],
}


def autolung_command() -> list[str]:
    return [sys.executable, "-m", "autolung_cli"] if not shutil.which("autolung") else [shutil.which("autolung")]


def run(command: list[str], env: dict[str, str]) -> None:
    subprocess.run(command, env=env, check=True)


def prepare_dataset(work: Path, held_out: str) -> Path:
    """raw/NSCLC_LOO: copies of the scans other than ``held_out`` and a dataset.json listing them
    (copies, not links: a dataset's files may not point outside its folder)."""
    raw = work / "root" / "raw" / DATASET
    if raw.is_dir():
        return raw
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    description = json.loads((DATA / "dataset.json").read_text())
    kept = [entry for entry in description["training"] if held_out not in entry["image"]]
    for entry in kept:
        for key, folder in (("image", "imagesTr"), ("label", "labelsTr")):
            name = Path(entry[key]).name
            shutil.copyfile(DATA / folder / name, raw / folder / name)
    description.update(name=DATASET, training=kept, numTraining=len(kept))
    (raw / "dataset.json").write_text(json.dumps(description, indent=1))
    return raw


def train(work: Path, held_out: str, budget: str, env: dict[str, str], model: tuple[str, str]) -> dict:
    """Plan, preprocess and train fold ``all`` of ``model`` (configuration, planner) unless already trained."""
    configuration, planner = model
    prepare_dataset(work, held_out)
    root = ["--root", str(work / "root")]
    checkpoint = (work / "root" / "results" / DATASET / f"{configuration}__{planner}" / "fold_all" /
                  "checkpoint_final.pt")
    if checkpoint.is_file():
        expose_as_fold_0(checkpoint.parent)
        return {"reused": str(checkpoint), "configuration": configuration, "planner": planner}
    cli = autolung_command()
    # The auto planner sizes the plan for the budget it is given.
    budget_args = ["--time-budget", budget] if planner == "auto" else []
    run([*cli, "plan_and_preprocess", "-d", DATASET, "--planner", planner, "-c", configuration, *budget_args,
         *root], env)
    start = time.perf_counter()
    run([*cli, "train", "-d", DATASET, "-c", configuration, "-f", "all", "--planner", planner, "--time-budget",
         budget, "--device", "cpu", "--no-final-validation", *root], env)
    expose_as_fold_0(checkpoint.parent)
    return {"trained_s": round(time.perf_counter() - start, 1), "budget": budget, "configuration": configuration,
            "planner": planner}


def expose_as_fold_0(fold_all: Path) -> None:
    """``predict -f`` takes fold numbers: the fold trained on every case is linked as fold_0."""
    link = fold_all.parent / "fold_0"
    if not link.exists():
        link.symlink_to(fold_all.name)


def held_out_input(work: Path, held_out: str, region: list[int] | None) -> tuple[Path, Path]:
    """A folder holding the held-out scan and its label file: whole, or a ``region`` (z, y, x)
    centred on the tumour (its label's centre of mass; 0 in y or x keeps the whole axis)."""
    name = "region" + "x".join(map(str, region)) if region else "whole"
    images, labels = work / f"input_{name}", work / f"labels_{name}"
    if images.is_dir():
        return images, labels
    images.mkdir()
    labels.mkdir()
    label = DATA / "labelsTr" / f"{held_out}.nii.gz"
    if region:
        centre = np.argwhere(sitk.GetArrayFromImage(sitk.ReadImage(str(label))) == CLASSES["tumour"]).mean(axis=0)
    for source, target in ((DATA / "imagesTr" / f"{held_out}.nii.gz", images / f"{held_out}_0000.nii.gz"),
                           (label, labels / f"{held_out}.nii.gz")):
        if not region:
            target.symlink_to(source.resolve())
            continue
        item = sitk.ReadImage(str(source))
        size = list(reversed(item.GetSize()))  # z, y, x
        want = [s if not r else min(r, s) for r, s in zip(region, size)]
        begin = [min(max(0, int(c) - w // 2), s - w) for c, w, s in zip(centre, want, size)]
        sitk.WriteImage(sitk.RegionOfInterest(item, list(reversed(want)), list(reversed(begin))), str(target))
    return images, labels


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def scores(mask: Path, reference: Path) -> dict[str, float]:
    predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(mask)))
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(reference)))
    per_class = {name: round(dice(predicted == value, expected == value), 4) for name, value in CLASSES.items()}
    return {**per_class, "mean": round(float(np.mean(list(per_class.values()))), 4)}


def predict(work: Path, setting: str, images: Path, labels: Path, threads: int, env: dict[str, str],
            model: tuple[str, str] = (CONFIGURATION, PLANNER)) -> dict:
    configuration, planner = model
    output = work / f"pred_{images.name}_{setting}"
    command = [*autolung_command(), "predict", "-i", str(images), "-o", str(output), "-d", DATASET, "-c",
               configuration, "-f", "0", "--planner", planner, "--root", str(work / "root"), "--threads",
               str(threads), "--no-progress", "--overwrite", "--device", "cpu", *SETTINGS[setting]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, peak = run_measured(command, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    mask = next(output.glob("*.nii.gz"))
    return {"setting": setting, "input": images.name, "s": round(seconds, 1), "cpu_s": round(cpu, 1),
            "load_avg": round(os.getloadavg()[0], 1), "peak_mb": round(peak),
            "dice": scores(mask, next(labels.glob("*.nii.gz"))), "mask": str(mask)}


NNUNET_ID, NNUNET_DATASET = 903, "Dataset903_NSCLCLOO"


def nnunet_model(work: Path, held_out: str, env: dict[str, str]) -> Path:
    """nnU-Net's own 3d_fullres model of the two training scans (fold ``all``, short training)."""
    import nnunet_models

    folder = work / "nnunet" / "results" / NNUNET_DATASET / f"{nnunet_models.TRAINER}__nnUNetPlans__3d_fullres"
    if (folder / "fold_all" / "checkpoint_final.pth").is_file():
        return folder
    raw = work / "nnunet" / "raw" / NNUNET_DATASET
    (raw / "imagesTr").mkdir(parents=True, exist_ok=True)
    (raw / "labelsTr").mkdir(exist_ok=True)
    cases = [Path(entry["image"]).name[:-len(".nii.gz")]
             for entry in json.loads((DATA / "dataset.json").read_text())["training"]]
    cases = [case for case in cases if case != held_out]
    for case in cases:
        for source, target in ((DATA / "imagesTr" / f"{case}.nii.gz", raw / "imagesTr" / f"{case}_0000.nii.gz"),
                               (DATA / "labelsTr" / f"{case}.nii.gz", raw / "labelsTr" / f"{case}.nii.gz")):
            if not target.exists():
                target.symlink_to(source.resolve())
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, **CLASSES}, "numTraining": len(cases),
        "file_ending": ".nii.gz"}, indent=1))
    nnunet_models._install_trainer()
    bin_ = nnunet_models.NNUNET_VENV / "bin"
    run([str(bin_ / "nnUNetv2_plan_and_preprocess"), "-d", str(NNUNET_ID), "-c", "3d_fullres", "-np", "1"], env)
    run([str(bin_ / "nnUNetv2_train"), str(NNUNET_ID), "3d_fullres", "all", "-tr", nnunet_models.TRAINER,
         "-device", "cpu"], env)
    return folder


def nnunet_env(work: Path, threads: int) -> dict[str, str]:
    root = work / "nnunet"
    return {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
            "nnUNet_results": str(root / "results"), "OMP_NUM_THREADS": str(threads), "nnUNet_n_proc_DA": "1",
            "AUTOLUNG_NNUNET_EPOCHS": os.environ.get("AUTOLUNG_NNUNET_EPOCHS", "1"),
            "AUTOLUNG_NNUNET_ITERATIONS": os.environ.get("AUTOLUNG_NNUNET_ITERATIONS", "4")}


def predict_same_model(work: Path, model: Path, setting: str, images: Path, labels: Path, threads: int,
                       env: dict[str, str]) -> dict:
    """One whole-scan prediction of nnU-Net's model: by nnU-Net (``nnunet_tta``, ``nnunet_notta``) or by
    autolung (a ``SETTINGS`` name, with ``_float32`` appended for float32 instead of ``auto``)."""
    import nnunet_models

    output = work / f"pred_nnunet_model_{setting}"
    shutil.rmtree(output, ignore_errors=True)
    if setting.startswith("nnunet_"):
        command = [str(nnunet_models.NNUNET_VENV / "bin" / "nnUNetv2_predict"), "-i", str(images), "-o",
                   str(output), "-d", str(NNUNET_ID), "-c", "3d_fullres", "-tr", nnunet_models.TRAINER, "-f", "all",
                   "-device", "cpu", "-npp", "1", "-nps", "1",
                   *(["--disable_tta"] if setting == "nnunet_notta" else [])]
        precision = "float32"
    else:
        name, precision = (setting[:-len("_float32")], "float32") if setting.endswith("_float32") \
            else (setting, "auto")
        command = [*autolung_command(), "predict", "-i", str(images), "-o", str(output), "--model", str(model),
                   "-f", "all", "--threads", str(threads), "--no-progress", "--device", "cpu",
                   "--precision", precision, *SETTINGS[name]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, peak = run_measured(command, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    mask = next(output.glob("*.nii.gz"))
    return {"model": "nnunet", "setting": setting, "precision": precision, "input": images.name,
            "s": round(seconds, 1),
            "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
            "load_avg": round(os.getloadavg()[0], 1), "peak_mb": round(peak),
            "dice": scores(mask, next(labels.glob("*.nii.gz"))), "mask": str(mask)}


def add_nnunet_agreement(rows: list[dict]) -> None:
    """Dice against nnU-Net's own no-TTA mask of the same model, and time against nnU-Net's runs."""
    nnunet = {row["setting"]: row for row in rows if row.get("model") == "nnunet" and
              row["setting"].startswith("nnunet_")}
    reference = nnunet.get("nnunet_notta")
    for row in rows:
        if row.get("model") != "nnunet" or reference is None:
            continue
        row["dice_vs_nnunet_notta_mask"] = scores(Path(row["mask"]), Path(reference["mask"]))
        row["time_vs_nnunet_notta"] = round(row["s"] / reference["s"], 3)
        if "nnunet_tta" in nnunet:
            row["time_vs_nnunet_tta"] = round(row["s"] / nnunet["nnunet_tta"]["s"], 3)


def add_agreement(rows: list[dict]) -> None:
    """Dice of each mask against the full mode's mask of the same input, and time ratios."""
    full = {row["input"]: row for row in rows if row["setting"] == "full" and "model" not in row}
    for row in rows:
        if "model" in row:
            continue
        reference = full.get(row["input"])
        if reference is None:
            continue
        row["dice_vs_full_mask"] = scores(Path(row["mask"]), Path(reference["mask"]))
        row["mean_dice_minus_full"] = round(row["dice"]["mean"] - reference["dice"]["mean"], 4)
        row["time_vs_full"] = round(row["s"] / reference["s"], 3)
        row["cpu_time_vs_full"] = round(row["cpu_s"] / reference["cpu_s"], 3)


# Patches whose window counts bound what coarse-to-fine could save: the cpu preset's, nnU-Net's
# 3d_fullres plan for these scans, and the auto planner's 2d plan.
ROI_BOUND_PATCHES = {"cpu 3d_fullres": (20, 80, 80), "nnU-Net 3d_fullres": (48, 224, 192), "auto 2d": (1, 192, 192)}


def roi_window_bound(step_size: float = 0.75) -> list[dict]:
    """How many of ``fast``'s windows touch the reference foreground, per scan and patch.

    A coarse-to-fine pass can at best skip the body windows holding no lung or tumour voxel, so
    this is the ceiling of its saving, from the labels alone (no network runs). Volumes are taken
    on their own grid (the plans resample these scans to about their own spacing).
    """
    sys.path.insert(0, str(REPO))
    from autolung.inference.levers import BODY_THRESHOLD_HU, body_box, body_mask
    from autolung.inference.window_grid import window_starts

    rows = []
    for label_file in sorted((DATA / "labelsTr").glob("*.nii.gz")):
        case = label_file.name[:-len(".nii.gz")]
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / "imagesTr" / label_file.name)))
        foreground = sitk.GetArrayFromImage(sitk.ReadImage(str(label_file))) > 0
        body = body_mask(image.astype(np.float32), BODY_THRESHOLD_HU)
        for name, patch in ROI_BOUND_PATCHES.items():
            box = body_box(body, patch)
            windows = [w for w in window_starts(body[box].shape, patch, step_size) if body[box][w].any()]
            touching = sum(1 for w in windows if foreground[box][w].any())
            rows.append({"case": case, "patch": name, "body_windows": len(windows), "foreground_windows": touching,
                         "share": round(touching / len(windows), 2)})
    return rows


def machine() -> dict:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), "")
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "avx512": "avx512f" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "load_avg_at_start": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--held-out", default="lung1_003")
    parser.add_argument("--budget", default="8m", help="training time budget when no model is there yet")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configuration", default=CONFIGURATION, help="the configuration trained and predicted")
    parser.add_argument("--planner", default=PLANNER, help="the planner of that configuration (auto, cpu, ...)")
    parser.add_argument("--settings", default="fast,no_mirror,fast_mirror_x,full",
                        help=f"comma list of {', '.join(SETTINGS)}")
    parser.add_argument("--region", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="also run --region-settings on this region around the tumour (0: whole axis), "
                             "where the full mode fits")
    parser.add_argument("--region-settings", default="full,fast,fast_mirror_x,no_mirror")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--nnunet", action="store_true", help="also run nnU-Net side by side on its own model")
    parser.add_argument("--nnunet-settings", default="nnunet_notta,fast,no_mirror,fast_float32,no_mirror_float32",
                        help="nnunet_notta, nnunet_tta, or autolung settings (optionally with _float32)")
    parser.add_argument("--roi-bound", action="store_true",
                        help="only count, per scan and patch, the fast mode's windows that touch the reference "
                             "foreground: the most coarse-to-fine could skip")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: the benchmark needs the shared NSCLC scans")
    if args.roi_bound:
        for row in roi_window_bound():
            print(json.dumps(row), flush=True)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    model = (args.configuration, args.planner)
    result: dict = {"machine": machine(), "held_out": args.held_out, "threads": args.threads,
                    "training": train(args.work, args.held_out, args.budget, env, model), "rows": []}
    plan = [(None, name) for name in args.settings.split(",") if name]
    if args.region:
        plan += [(args.region, name) for name in args.region_settings.split(",") if name]
    for region, setting in plan:
        images, labels = held_out_input(args.work, args.held_out, region)
        row = predict(args.work, setting, images, labels, args.threads, env, model)
        result["rows"].append(row)
        add_agreement(result["rows"])
        print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
    if args.nnunet:
        env_nnunet = {**nnunet_env(args.work, args.threads), "PYTHONPATH": str(REPO)}
        start = time.perf_counter()
        model = nnunet_model(args.work, args.held_out, env_nnunet)
        result["nnunet_training_s"] = round(time.perf_counter() - start, 1)
        images, labels = held_out_input(args.work, args.held_out, None)
        for setting in (name for name in args.nnunet_settings.split(",") if name):
            row = predict_same_model(args.work, model, setting, images, labels, args.threads, env_nnunet)
            result["rows"].append(row)
            add_nnunet_agreement(result["rows"])
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
