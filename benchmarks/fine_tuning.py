"""Benchmark: test Dice of a model fine-tuned from a pretrained checkpoint vs one trained from scratch.

Usage::

    .venv/bin/python benchmarks/fine_tuning.py [--data ../shared/data] [--work /tmp/autolung_fine_tuning]
        [--configuration 2d] [--batch-size 8] [--pretrain-budget 20m] [--budget 5m]
        [--source-cases 100] [--target-cases 8] [--test-cases 20] [--threads 2] [--json results.json]

Everything runs through the real CLI (``python -m autolung_cli``), on Task04_Hippocampus
(``--configuration``, default 2d; ``cpu`` planner), with the committed patient-disjoint split
``benchmarks/splits/Task04_Hippocampus.json`` (one MRI per subject, so one case is one patient):

1. Two datasets are copied (Decathlon layout) under ``WORK/root/raw``: the source
   ``HippoSource`` (the first ``source-cases`` training cases of the split) and the small target
   ``HippoTarget`` (the next ``target-cases`` training cases, disjoint from the source). The test
   cases are the first ``test-cases`` of the split's test side, copied into ``WORK/test_images``
   and ``WORK/test_labels``; neither dataset sees them.
2. ``plan_and_preprocess -d HippoSource -c CFG --planner cpu``, then the source is trained
   on all its cases (``train -f all --time-budget PRETRAIN --no-final-validation``).
3. ``transfer_plans -s HippoSource -t HippoTarget -sp cpu -tp cpu_transfer`` and
   ``preprocess -d HippoTarget --planner cpu_transfer``: both target runs use the same network.
4. Scratch: ``train -d HippoTarget -f all --planner cpu_transfer --time-budget BUDGET``.
   Fine-tuned: the same with ``--pretrained-weights`` set to the source's ``checkpoint_final.pt``.
   Only the initial weights differ (same seed, budget, batch, iterations per epoch, threads).
   Every run overrides the plans' batch with ``--batch-size`` (default 8), so that minutes on two
   CPU cores buy hundreds of iterations.
5. Each model predicts the test images (``predict -f all --mode full``) and ``evaluate`` scores
   them against the test labels.

The table gives the mean test Dice per class, training iterations and training-loop time of each
run, and the ratio fine-tuned / scratch. Data preparation, planning and pretraining are outside
the compared budget (the pretraining time is printed separately).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPLIT = REPO / "benchmarks" / "splits" / "Task04_Hippocampus.json"
SOURCE, TARGET = "HippoSource", "HippoTarget"
SOURCE_PLANNER, TARGET_PLANNER = "cpu", "cpu_transfer"


def autolung(*args: str, threads: int) -> float:
    """Run one CLI command, fail loudly on a non-zero exit; returns its wall time in seconds."""
    command = [sys.executable, "-m", "autolung_cli", *args]
    print("$ autolung " + " ".join(args), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    return time.perf_counter() - start


def link_dataset(raw_hippocampus: Path, folder: Path, name: str, cases: list[str]) -> None:
    """A Decathlon-layout dataset of ``cases`` at ``folder`` (copies: autolung refuses links that
    point outside a dataset's folder)."""
    original = json.loads((raw_hippocampus / "dataset.json").read_text())
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for case in cases:
            link = folder / sub / f"{case}.nii.gz"
            if not link.exists():
                shutil.copyfile(raw_hippocampus / sub / f"{case}.nii.gz", link)
    spec = {key: original[key] for key in ("tensorImageSize", "modality", "labels")}
    spec.update(name=name, description=f"{len(cases)} cases of Task04_Hippocampus (benchmarks/fine_tuning.py)",
                numTraining=len(cases), numTest=0,
                training=[{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases])
    (folder / "dataset.json").write_text(json.dumps(spec, indent=2))


def link_files(raw_hippocampus: Path, sub: str, folder: Path, cases: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        link = folder / f"{case}.nii.gz"
        if not link.exists():
            shutil.copyfile(raw_hippocampus / sub / f"{case}.nii.gz", link)


def training_figures(fold_folder: Path) -> dict:
    """Iterations and training-loop seconds from ``training_log.jsonl``, plus the pretrained record."""
    records = [json.loads(line) for line in (fold_folder / "training_log.jsonl").read_text().splitlines() if line]
    info = json.loads((fold_folder / "training_info.json").read_text())
    return {"epochs": len(records), "iterations": sum(r["iterations"] for r in records),
            "train_s": round(records[-1]["elapsed_s"], 1),
            "pretrained": {key: info[key] for key in ("pretrained_weights", "loaded", "skipped_heads") if key in info}}


def test_dice(root: Path, work: Path, run: str, args: argparse.Namespace) -> dict:
    """Predict the test images with the target's fold ``all`` and score them."""
    prediction = work / f"pred_{run}"
    autolung("predict", "-i", str(work / "test_images"), "-o", str(prediction), "-d", TARGET, "-c", args.configuration,
             "-f", "all", "--planner", TARGET_PLANNER, "--mode", "full", "--device", "cpu",
             "--threads", str(args.threads), "--no-progress", "--overwrite", "--root", str(root),
             threads=args.threads)
    summary = work / f"summary_{run}.json"
    autolung("evaluate", "-r", str(work / "test_labels"), "-p", str(prediction), "-o", str(summary),
             threads=args.threads)
    data = json.loads(summary.read_text())
    return {"num_cases": data["num_cases"], "mean_foreground_dice": data["mean_foreground_dice"],
            "dice": {key: value["dice"]["mean"] for key, value in data["per_class"].items()}}


def train_target(root: Path, work: Path, run: str, budget: str, args: argparse.Namespace,
                 pretrained: Path | None) -> dict:
    """Train (or reuse) one target model, then score it on the test cases."""
    output = root / "results" / TARGET / f"{args.configuration}__{TARGET_PLANNER}"
    kept = work / f"model_{run}"
    if output.exists():
        shutil.rmtree(output)
    if (kept / "fold_all" / "checkpoint_final.pt").is_file():
        # A finished run of an interrupted benchmark: score it again rather than retrain.
        shutil.move(str(kept), str(output))
        wall = float("nan")
    else:
        wall = train_run(root, run, budget, args, pretrained)
    row = training_figures(output / "fold_all")
    row["process_wall_s"] = round(wall, 1)
    try:
        row["test"] = test_dice(root, work, run, args)
    finally:
        # Kept aside (also when scoring failed) so that the other run can use the same folder.
        shutil.move(str(output), str(kept))
    return row


def train_run(root: Path, run: str, budget: str, args: argparse.Namespace, pretrained: Path | None) -> float:
    """One target training run; returns the process wall time in seconds."""
    extra = ["--pretrained-weights", str(pretrained)] if pretrained else []
    return autolung("train", "-d", TARGET, "-c", args.configuration, "-f", "all", "--planner", TARGET_PLANNER,
                    "--time-budget", budget, "--iters-per-epoch", str(args.iters_per_epoch),
                    "--val-iters", str(args.val_iters), "--no-final-validation", "--device", "cpu",
                    "--threads", str(args.threads), "--num-workers", "0", "--batch-size", str(args.batch_size),
                    "--root", str(root), *extra, threads=args.threads)


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/autolung_fine_tuning"))
    parser.add_argument("--configuration", default="2d",
                        help="2d (default: hundreds of iterations per minute on 2 CPU cores) or 3d_fullres "
                             "(about 3 s per iteration there, so minutes teach it little).")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="Batch of every run (the cpu plans' 2d batch, 97 slices, takes over 3 s per "
                             "iteration on 2 cores: a few dozen iterations in minutes).")
    parser.add_argument("--pretrain-budget", default="20m")
    parser.add_argument("--budget", default="5m", help="Training budget of each target run.")
    parser.add_argument("--source-cases", type=int, default=100)
    parser.add_argument("--target-cases", type=int, default=8)
    parser.add_argument("--test-cases", type=int, default=20)
    parser.add_argument("--iters-per-epoch", type=int, default=50)
    parser.add_argument("--val-iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    raw_hippocampus = (args.data / "Task04_Hippocampus").resolve()
    if not raw_hippocampus.is_dir():
        print(f"skipped: {raw_hippocampus} is absent", file=sys.stderr)
        return 0
    split = json.loads(SPLIT.read_text())["folds"][0]
    train_side, test_side = sorted(split["train"]), sorted(split["test"])
    if args.source_cases + args.target_cases > len(train_side) or args.test_cases > len(test_side):
        parser.error(f"the split has {len(train_side)} training and {len(test_side)} test cases")
    source_cases = train_side[:args.source_cases]
    target_cases = train_side[args.source_cases:args.source_cases + args.target_cases]
    test_cases = test_side[:args.test_cases]

    work = args.work.resolve()
    root = work / "root"
    link_dataset(raw_hippocampus, root / "raw" / SOURCE, SOURCE, source_cases)
    link_dataset(raw_hippocampus, root / "raw" / TARGET, TARGET, target_cases)
    link_files(raw_hippocampus, "imagesTr", work / "test_images", test_cases)
    link_files(raw_hippocampus, "labelsTr", work / "test_labels", test_cases)

    t = args.threads
    autolung("plan_and_preprocess", "-d", SOURCE, "-c", args.configuration, "--planner", SOURCE_PLANNER,
             "-np", str(t), "--no-progress", "--root", str(root), threads=t)
    source_model = root / "results" / SOURCE / f"{args.configuration}__{SOURCE_PLANNER}" / "fold_all"
    checkpoint = source_model / "checkpoint_final.pt"
    if not checkpoint.is_file():
        autolung("train", "-d", SOURCE, "-c", args.configuration, "-f", "all", "--planner", SOURCE_PLANNER,
                 "--time-budget", args.pretrain_budget, "--iters-per-epoch", str(args.iters_per_epoch),
                 "--val-iters", str(args.val_iters), "--no-final-validation", "--device", "cpu",
                 "--threads", str(t), "--num-workers", "0", "--batch-size", str(args.batch_size),
                 "--root", str(root), threads=t)
    pretraining = training_figures(source_model)
    autolung("transfer_plans", "-s", SOURCE, "-t", TARGET, "-sp", SOURCE_PLANNER, "-tp", TARGET_PLANNER,
             "--overwrite", "--root", str(root), threads=t)
    autolung("preprocess", "-d", TARGET, "-c", args.configuration, "--planner", TARGET_PLANNER, "-np", str(t),
             "--no-progress", "--root", str(root), threads=t)

    runs = {"scratch": train_target(root, work, "scratch", args.budget, args, None),
            "fine_tuned": train_target(root, work, "fine_tuned", args.budget, args, checkpoint)}
    classes = list(runs["scratch"]["test"]["dice"])
    print(f"\nTask04_Hippocampus {args.configuration}: pretrained on {len(source_cases)} cases "
          f"({pretraining['iterations']} iterations, {pretraining['train_s']} s); target {len(target_cases)} "
          f"training cases, {len(test_cases)} test cases (patient-disjoint); budget {args.budget} each; "
          f"{t} threads")
    header = f"{'run':<12}" + "".join(f"{'Dice ' + c:>12}" for c in classes) + f"{'mean':>8}{'iters':>7}{'train_s':>9}"
    print(header)
    for name, row in runs.items():
        test = row["test"]
        print(f"{name:<12}" + "".join(f"{test['dice'][c]:>12.4f}" for c in classes)
              + f"{test['mean_foreground_dice']:>8.4f}{row['iterations']:>7}{row['train_s']:>9}")
    ratio = {c: _ratio(runs["fine_tuned"]["test"]["dice"][c], runs["scratch"]["test"]["dice"][c]) for c in classes}
    ratio["mean"] = _ratio(runs["fine_tuned"]["test"]["mean_foreground_dice"],
                           runs["scratch"]["test"]["mean_foreground_dice"])
    print(f"{'ratio ft/sc':<12}" + "".join(f"{ratio[c]:>12.3f}" for c in classes) + f"{ratio['mean']:>8.3f}")
    result = {"dataset": "Task04_Hippocampus", "configuration": args.configuration, "source_cases": len(source_cases),
              "target_cases": target_cases, "test_cases": test_cases, "budget": args.budget,
              "pretrain_budget": args.pretrain_budget, "threads": t, "pretraining": pretraining,
              "runs": runs, "ratio_fine_tuned_vs_scratch": ratio}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
