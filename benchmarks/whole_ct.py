"""Whole chest CT prediction on a CPU: time, peak memory and per-class Dice of every speed lever.

A ``cpu``-planner model is trained (or reused) on two of the three NSCLC-Radiomics scans in
``../shared/data/NSCLC_LungCT`` (fold ``all`` of a copy that leaves one scan out), then the
held-out whole scan is predicted through the real command line (``autolung predict``), once per
lever setting, from the command to the written mask. Each run's wall time and peak memory (PSS of
the process tree) are measured, and its CPU time (user + system of the process tree, less
sensitive than wall time to other jobs on a shared machine); each mask is scored per class (lung, tumour) against the
reference, and against the ``full`` mode's mask (the reference setting: every mirroring, step 0.5,
whole volume), side by side in one table.

The ``full`` mode of a whole scan takes many minutes on a 2-core CPU. ``--region Z Y X`` runs the
full-mode reference (and, side by side, other settings) on a region around the tumour instead, so
the accuracy comparison stays side by side even when the whole-scan full run does not fit.

nnU-Net is not run here (its whole-scan CPU run needs tens of minutes); see docs/benchmarks.md for
the per-window comparison it is estimated from.

Usage::

    .venv/bin/python benchmarks/whole_ct.py WORK [--held-out lung1_003] [--budget 8m] [--threads 2]
        [--settings fast,no_mirror,mirror_x_fast,full] [--json out.json]
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


def train(work: Path, held_out: str, budget: str, env: dict[str, str]) -> dict:
    """Plan, preprocess and train fold ``all`` with the cpu planner unless already trained."""
    prepare_dataset(work, held_out)
    root = ["--root", str(work / "root")]
    model = work / "root" / "results" / DATASET / f"3d_fullres__{PLANNER}" / "fold_all" / "checkpoint_final.pt"
    if model.is_file():
        expose_as_fold_0(model.parent)
        return {"reused": str(model)}
    cli = autolung_command()
    run([*cli, "plan_and_preprocess", "-d", DATASET, "--planner", PLANNER, "-c", "3d_fullres", *root], env)
    start = time.perf_counter()
    run([*cli, "train", "-d", DATASET, "-c", "3d_fullres", "-f", "0", "--planner", PLANNER, "--time-budget",
         budget, "--device", "cpu", "--no-final-validation", *root], env)
    expose_as_fold_0(model.parent)
    return {"trained_s": round(time.perf_counter() - start, 1), "budget": budget}


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


def predict(work: Path, setting: str, images: Path, labels: Path, threads: int, env: dict[str, str]) -> dict:
    output = work / f"pred_{images.name}_{setting}"
    command = [*autolung_command(), "predict", "-i", str(images), "-o", str(output), "-d", DATASET, "-c",
               "3d_fullres", "-f", "0", "--planner", PLANNER, "--root", str(work / "root"), "--threads",
               str(threads), "--no-progress", "--overwrite", "--device", "cpu", *SETTINGS[setting]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, peak = run_measured(command, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    mask = next(output.glob("*.nii.gz"))
    return {"setting": setting, "input": images.name, "s": round(seconds, 1), "cpu_s": round(cpu, 1),
            "load_avg": round(os.getloadavg()[0], 1), "peak_mb": round(peak),
            "dice": scores(mask, next(labels.glob("*.nii.gz"))), "mask": str(mask)}


def add_agreement(rows: list[dict]) -> None:
    """Dice of each mask against the full mode's mask of the same input, and time ratios."""
    full = {row["input"]: row for row in rows if row["setting"] == "full"}
    for row in rows:
        reference = full.get(row["input"])
        if reference is None:
            continue
        row["dice_vs_full_mask"] = scores(Path(row["mask"]), Path(reference["mask"]))
        row["mean_dice_minus_full"] = round(row["dice"]["mean"] - reference["dice"]["mean"], 4)
        row["time_vs_full"] = round(row["s"] / reference["s"], 3)
        row["cpu_time_vs_full"] = round(row["cpu_s"] / reference["cpu_s"], 3)


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
    parser.add_argument("--settings", default="fast,no_mirror,fast_mirror_x,full",
                        help=f"comma list of {', '.join(SETTINGS)}")
    parser.add_argument("--region", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="also run --region-settings on this region around the tumour (0: whole axis), "
                             "where the full mode fits")
    parser.add_argument("--region-settings", default="full,fast,fast_mirror_x,no_mirror")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: the benchmark needs the shared NSCLC scans")
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    result: dict = {"machine": machine(), "held_out": args.held_out, "threads": args.threads,
                    "training": train(args.work, args.held_out, args.budget, env), "rows": []}
    plan = [(None, name) for name in args.settings.split(",") if name]
    if args.region:
        plan += [(args.region, name) for name in args.region_settings.split(",") if name]
    for region, setting in plan:
        images, labels = held_out_input(args.work, args.held_out, region)
        row = predict(args.work, setting, images, labels, args.threads, env)
        result["rows"].append(row)
        add_agreement(result["rows"])
        print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
