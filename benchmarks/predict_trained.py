"""Prediction with trained models: speed, peak memory and accuracy, autolung vs nnU-Net v2.

It reuses a work folder kept by ``accuracy_at_equal_time.py --keep``: there both tools trained
fold 0 of the same dataset with the same plan (nnU-Net's patch, batch and U-Net topology) for the
same wall-clock time. Here both predict the fold's validation cases through their command lines,
with test-time mirroring (the default of both), on the same thread count:

* ``nnUNetv2_predict -device cpu`` with its trained fold 0;
* ``autolung predict`` with its trained fold 0 (default precision: bfloat16 on a CPU that runs
  it natively), and again with ``--precision float32`` to show what the faster default costs in
  accuracy.

Each run's wall time and peak memory (PSS of the process tree) are measured, tools alternated;
every output folder is scored by the same code (``autolung evaluate``) against the reference
labels. The accuracies differ because the models differ (each tool trained its own); the
comparison that isolates inference is autolung's default against its own float32 run.

Usage::

    .venv/bin/python benchmarks/predict_trained.py WORK_FOLDER [--key hippocampus] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import predict as bench  # noqa: E402  (process-tree memory measurement)
import train_step  # noqa: E402  (dataset keys, nnU-Net environment)

REPO = Path(__file__).resolve().parents[1]
TRAINER = "nnUNetTrainer_autolungEqualTime"


def validation_inputs(work: Path, key: str) -> tuple[Path, Path, list[str]]:
    """Folders of the fold-0 validation images (nnU-Net naming) and labels, as symlinks."""
    folder, _, configuration, dataset_id = train_step.DATASETS[key]
    raw = next((work / "nnUNet_raw").glob(f"Dataset{dataset_id}_*"))
    splits = json.loads(next((work / "nnUNet_preprocessed").glob(f"Dataset{dataset_id}_*/splits_final.json"))
                        .read_text())
    cases = sorted(splits[0]["val"])
    images, labels = work / "val_images", work / "val_labels"
    images.mkdir(exist_ok=True)
    labels.mkdir(exist_ok=True)
    ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    for case in cases:
        for source, target in ((raw / "imagesTr" / f"{case}_0000{ending}", images / f"{case}_0000{ending}"),
                               (raw / "labelsTr" / f"{case}{ending}", labels / f"{case}{ending}")):
            if not target.exists():
                target.symlink_to(source.resolve())
    return images, labels, cases


def commands(work: Path, key: str, images: Path, threads: int) -> dict[str, list[str]]:
    folder, _, configuration, dataset_id = train_step.DATASETS[key]
    autolung = [str(REPO / ".venv" / "bin" / "autolung"), "predict", "-i", str(images), "-d", folder, "-c",
                configuration, "-f", "0", "--root", str(work / "autolung_root"), "--threads", str(threads),
                "--no-progress", "--overwrite", "--mode", "full"]
    return {
        "nnunet": [str(train_step.DEFAULT_VENV / "bin" / "nnUNetv2_predict"), "-i", str(images), "-o",
                   str(work / "pred_nnunet"), "-d", str(dataset_id), "-c", configuration, "-f", "0", "-tr", TRAINER,
                   "-device", "cpu", "-npp", "1", "-nps", "1"],
        "autolung": autolung + ["-o", str(work / "pred_autolung")],
        "autolung_float32": autolung + ["-o", str(work / "pred_autolung_float32"), "--precision", "float32"],
    }


def mean_dice(labels: Path, predictions: Path) -> dict[str, float]:
    from autolung.evaluation.evaluate import evaluate_folders

    summary = evaluate_folders(labels, predictions)
    per_class = {key: round(values["dice"]["mean"], 4) for key, values in summary["per_class"].items()}
    return {**per_class, "mean": round(summary["mean_foreground_dice"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, help="a work folder kept by accuracy_at_equal_time.py --keep")
    parser.add_argument("--key", default="hippocampus", choices=list(train_step.DATASETS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    images, labels, cases = validation_inputs(args.work, args.key)
    env = train_step.nnunet_env(args.work, args.threads)
    runs = commands(args.work, args.key, images, args.threads)
    measured = bench.measure_alternating(runs, env, 1)
    row: dict = {"dataset": args.key, "cases": len(cases), "threads": args.threads}
    for name, (seconds, peak) in measured.items():
        output = Path(runs[name][runs[name].index("-o") + 1])
        row[name] = {"s_per_case": round(seconds / len(cases), 3), "total_s": round(seconds, 1),
                     "peak_mb": round(peak), "dice": mean_dice(labels, output)}
    row["time_ratio_autolung_vs_nnunet"] = round(row["autolung"]["total_s"] / row["nnunet"]["total_s"], 3)
    row["ram_ratio_autolung_vs_nnunet"] = round(row["autolung"]["peak_mb"] / row["nnunet"]["peak_mb"], 3)
    row["dice_change_bf16_vs_float32"] = round(row["autolung"]["dice"]["mean"]
                                               - row["autolung_float32"]["dice"]["mean"], 4)
    print(json.dumps(row, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
