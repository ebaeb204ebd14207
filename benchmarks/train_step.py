"""Benchmark: seconds per training iteration, autolung vs nnU-Net v2, same plan, same inputs.

Usage::

    .venv/bin/python benchmarks/train_step.py [--data ../shared/data] [--cases 0] [--iters 3]
        [--epochs 3] [--datasets hippocampus lungs2d] [--nnunet-venv PATH] [--skip-nnunet]
        [--rounds 2] [--num-workers N] [--markdown docs/benchmarks.md]

For each dataset (Task04_Hippocampus 3d_fullres, FindingLungs2D 2d):

1. a subset of ``--cases`` cases is linked into nnU-Net's raw layout; ``nnUNetv2_plan_and_preprocess``
   plans and preprocesses the one configuration;
2. nnU-Net's preprocessed cases (blosc2) are converted, by nnU-Net's own Python, to autolung's
   layout (``.npy``, ``_seg.npy``, ``.json`` with ``class_locations``), and an autolung plans.json
   is written with nnU-Net's patch size, batch size and U-Net topology, so both train the same
   network on the same voxels;
3. both train fold 0 for ``--epochs`` epochs of ``--iters`` iterations and 1 validation
   iteration, on the CPU, with the same torch and thread count (all cores: nnU-Net's choice).
   nnU-Net runs through a trainer subclass placed in its package folder (see
   ../shared/reference/README.md) that shortens training and skips the final validation.

Time per iteration is an epoch's wall time divided by its iterations, the best epoch after the
first (which carries warm-up) over ``--rounds`` alternating runs of the two tools: on a shared
machine the minimum is the least disturbed figure.
autolung also reports the fraction of that epoch spent waiting for batches.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_VENV = Path("~/.cache/nnunet-reference-venv").expanduser()
TRAINER_NAME = "nnUNetTrainer_autolungbench"

DATASETS = {
    # key: (folder, layout, configuration, nnU-Net id)
    "hippocampus": ("Task04_Hippocampus", "msd", "3d_fullres", 904),
    "lungs2d": ("FindingLungs2D", "nnunet", "2d", 905),
}

TRAINER_SOURCE = '''
import os
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class {name}(nnUNetTrainer):
    """Shortened nnU-Net training for autolung's train_step benchmark."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        # nnU-Net records its __init__ arguments by name, so the signature must match exactly.
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get("AUTOLUNG_BENCH_EPOCHS", "3"))
        self.num_iterations_per_epoch = int(os.environ.get("AUTOLUNG_BENCH_ITERS", "3"))
        self.num_val_iterations_per_epoch = 1

    def perform_actual_validation(self, save_probabilities: bool = False):
        pass
'''.format(name=TRAINER_NAME)

CONVERTER_SOURCE = r'''
import json, sys
from pathlib import Path
import numpy as np
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

source, target = Path(sys.argv[1]), Path(sys.argv[2])
target.mkdir(parents=True, exist_ok=True)
dataset_class = infer_dataset_class(str(source))
dataset = dataset_class(str(source))
for identifier in dataset.identifiers:
    data, seg, _, properties = dataset.load_case(identifier)
    np.save(target / f"{identifier}.npy", np.asarray(data[:], dtype=np.float32))
    np.save(target / f"{identifier}_seg.npy", np.asarray(seg[:], dtype=np.int8))
    locations = {str(k): np.asarray(v)[:, 1:].astype(int).tolist() for k, v in properties["class_locations"].items()}
    (target / f"{identifier}.json").write_text(json.dumps({"case_id": identifier, "class_locations": locations}))
print(len(dataset.identifiers))
'''


@dataclass
class StepTiming:
    """Per-iteration seconds of the last epoch, and autolung's data-wait fraction."""

    seconds_per_iteration: float
    data_wait_fraction: float | None
    total_s: float


def run(command: list[str], env: dict[str, str], log: Path) -> float:
    """Run ``command`` with output to ``log``; return its wall time; exit on failure."""
    start = time.perf_counter()
    with open(log, "w") as handle:
        result = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"failed (exit {result.returncode}): {' '.join(command)}\n{log.read_text()[-4000:]}")
    return time.perf_counter() - start


def link_subset(dataset: Path, layout: str, target: Path, cases: int) -> None:
    """Link the first ``cases`` training cases into ``target`` (MSD or nnU-Net v2 raw layout)."""
    payload = json.loads((dataset / "dataset.json").read_text())
    (target / "imagesTr").mkdir(parents=True)
    (target / "labelsTr").mkdir()
    if layout == "msd":
        (target / "imagesTs").mkdir()  # nnU-Net's converter insists on it
        payload["training"] = payload["training"][:cases or None]
        payload["numTraining"] = len(payload["training"])
        for entry in payload["training"]:
            for key in ("image", "label"):
                name = Path(entry[key]).name
                (target / Path(entry[key]).parent.name / name).symlink_to((dataset / entry[key]).resolve())
    else:
        labels = sorted((dataset / "labelsTr").iterdir())[:cases or None]
        ending = payload["file_ending"]
        for label in labels:
            case = label.name[: -len(ending)]
            (target / "labelsTr" / label.name).symlink_to(label.resolve())
            for image in (dataset / "imagesTr").glob(f"{case}_*{ending}"):
                (target / "imagesTr" / image.name).symlink_to(image.resolve())
        payload["numTraining"] = len(labels)
    (target / "dataset.json").write_text(json.dumps(payload, indent=2))


def nnunet_env(work: Path, threads: int) -> dict[str, str]:
    return dict(os.environ, nnUNet_raw=str(work / "nnUNet_raw"), nnUNet_preprocessed=str(work / "nnUNet_preprocessed"),
                nnUNet_results=str(work / "nnUNet_results"), nnUNet_n_proc_DA="2",
                OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def prepare_nnunet(key: str, data: Path, work: Path, venv: Path, cases: int, env: dict[str, str]) -> Path:
    """Raw subset, conversion and plan + preprocess by nnU-Net; return its preprocessed dataset folder."""
    folder, layout, configuration, dataset_id = DATASETS[key]
    name = f"Dataset{dataset_id}_{folder.replace('_', '')}"
    if layout == "msd":
        task = work / "msd" / f"Task{dataset_id % 100:02d}_{folder.split('_', 1)[-1]}"
        link_subset(data / folder, layout, task, cases)
        run([str(venv / "bin" / "nnUNetv2_convert_MSD_dataset"), "-i", str(task), "-overwrite_id", str(dataset_id),
             "-np", "2"], env, work / "convert.log")
        name = next((work / "nnUNet_raw").glob(f"Dataset{dataset_id}_*")).name
    else:
        link_subset(data / folder, layout, work / "nnUNet_raw" / name, cases)
    run([str(venv / "bin" / "nnUNetv2_plan_and_preprocess"), "-d", str(dataset_id), "-c", configuration,
         "-np", "2", "-npfp", "2"], env, work / "plan_and_preprocess.log")
    return work / "nnUNet_preprocessed" / name


def autolung_plans(nnunet_preprocessed: Path, configuration: str, dataset_name: str):
    """autolung Plans with nnU-Net's patch, batch and topology for ``configuration``."""
    from autolung.labels import RegionMapping
    from autolung.planning.plans import ArchitecturePlan, ConfigurationPlan, NormalizationPlan, Plans

    plans = json.loads((nnunet_preprocessed / "nnUNetPlans.json").read_text())
    dataset = json.loads((nnunet_preprocessed / "dataset.json").read_text())
    config = plans["configurations"][configuration]
    kwargs = config["architecture"]["arch_kwargs"]
    dim = len(config["patch_size"])
    arch = ArchitecturePlan(network="unet", dim=dim, features_per_stage=list(kwargs["features_per_stage"]),
                            strides=[list(s) for s in kwargs["strides"]],
                            kernel_sizes=[list(k) for k in kwargs["kernel_sizes"]],
                            blocks_per_stage=list(kwargs["n_conv_per_stage"]),
                            decoder_convs_per_stage=list(kwargs["n_conv_per_stage_decoder"]))
    spacing = list(config["spacing"])
    if dim == 2:
        spacing = [999.0, *spacing]
    channels = list(dataset["channel_names"].values()) if "channel_names" in dataset else ["image"]
    labels = {str(k): int(v) for k, v in dataset["labels"].items()}
    foreground = sorted(v for v in labels.values() if v > 0)
    configuration_plan = ConfigurationPlan(
        name=configuration, dim=dim, spacing=spacing, patch_size=list(config["patch_size"]),
        batch_size=int(config["batch_size"]), architecture=arch,
        normalization=[NormalizationPlan(channel_name=c, scheme="zscore") for c in channels],
        median_shape_after_resampling=list(config["median_image_size_in_voxels"]))
    return Plans(dataset_name=dataset_name, planner="default", channel_names=channels, labels=labels,
                 region_mapping=RegionMapping.one_per_label(foreground),
                 configurations={configuration: configuration_plan})


def prepare_autolung(key: str, nnunet_preprocessed: Path, work: Path, venv: Path, env: dict[str, str]) -> Path:
    """Convert nnU-Net's preprocessed cases and plans to an autolung data root; return the root."""
    _, _, configuration, _ = DATASETS[key]
    plans_file = json.loads((nnunet_preprocessed / "nnUNetPlans.json").read_text())
    data_identifier = plans_file["configurations"][configuration]["data_identifier"]
    root = work / "autolung_root"
    target = root / "preprocessed" / key / configuration
    converter = work / "convert_preprocessed.py"
    converter.write_text(CONVERTER_SOURCE)
    run([str(venv / "bin" / "python"), str(converter), str(nnunet_preprocessed / data_identifier), str(target)], env,
        work / "convert_preprocessed.log")
    plans = autolung_plans(nnunet_preprocessed, configuration, key)
    plans.save(root / "preprocessed" / key / "plans.json")
    return root


def time_autolung(key: str, root: Path, work: Path, epochs: int, iters: int, workers: int | None,
                  threads: int) -> StepTiming:
    _, _, configuration, _ = DATASETS[key]
    command = [sys.executable, "-m", "autolung_cli", "train", "-d", key, "-c", configuration, "-f", "0",
               "--root", str(root), "--epochs", str(epochs), "--iters-per-epoch", str(iters), "--val-iters", "1",
               "--device", "cpu", "--no-final-validation"]
    if workers is not None:
        command += ["--num-workers", str(workers)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    total = run(command, env, work / "autolung_train.log")
    log = root / "results" / key / f"{configuration}__default" / "fold_0" / "training_log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()][1:]  # epoch 1 is warm-up
    best = min(records, key=lambda r: r["epoch_time_s"] / r["iterations"])
    return StepTiming(best["epoch_time_s"] / best["iterations"], best["data_wait_fraction"], total)


def time_nnunet(key: str, work: Path, venv: Path, env: dict[str, str], epochs: int, iters: int) -> StepTiming:
    _, _, configuration, dataset_id = DATASETS[key]
    package = next((venv / "lib").glob("python3*/site-packages/nnunetv2/training/nnUNetTrainer"))
    (package / f"{TRAINER_NAME}.py").write_text(TRAINER_SOURCE)
    env = dict(env, AUTOLUNG_BENCH_EPOCHS=str(epochs), AUTOLUNG_BENCH_ITERS=str(iters))
    total = run([str(venv / "bin" / "nnUNetv2_train"), str(dataset_id), configuration, "0", "-tr", TRAINER_NAME,
                 "-device", "cpu"], env, work / "nnunet_train.log")
    logs = sorted((work / "nnUNet_results").rglob("training_log_*.txt"))
    times = [float(v) for v in re.findall(r"Epoch time: ([0-9.]+) s", logs[-1].read_text())][1:]
    return StepTiming(min(times) / iters, None, total)


def _faster(best: StepTiming | None, new: StepTiming) -> StepTiming:
    return new if best is None or new.seconds_per_iteration < best.seconds_per_iteration else best


def markdown_section(rows: list[tuple[str, StepTiming, StepTiming | None]], args: argparse.Namespace,
                     threads: int) -> str:
    import torch

    lines = ["## train_step", "",
             f"`benchmarks/train_step.py --cases {args.cases} --epochs {args.epochs} --iters {args.iters} "
             f"--rounds {args.rounds}`, "
             f"CPU ({os.cpu_count()} cores, {threads} torch threads, torch {torch.__version__}), "
             f"{time.strftime('%Y-%m-%d')}. Same nnU-Net plan (patch, batch, U-Net) and the same preprocessed "
             "voxels for both; the tools alternate and each one's best epoch after the first counts, per "
             "iteration. The machine was shared with other jobs, so absolute figures are noisy.", "",
             "| dataset | autolung s/iter | data wait | nnU-Net s/iter | ratio (autolung / nnU-Net) |",
             "|---|---|---|---|---|"]
    for name, ours, theirs in rows:
        their_text = f"{theirs.seconds_per_iteration:.2f}" if theirs else "n/a"
        ratio = f"{ours.seconds_per_iteration / theirs.seconds_per_iteration:.2f}x" if theirs else "n/a"
        lines.append(f"| {name} | {ours.seconds_per_iteration:.2f} | {100 * ours.data_wait_fraction:.0f}% | "
                     f"{their_text} | {ratio} |")
    return "\n".join(lines) + "\n"


def append_section(path: Path, section: str) -> None:
    """Replace an existing ``## train_step`` section of ``path`` or append one; other sections stay."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## train_step\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--cases", type=int, default=0,
                        help="training cases linked from each dataset (0 = all; fewer cases shrink nnU-Net's batch)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--iters", type=int, default=3, help="training iterations per epoch")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of both tools; the best counts")
    parser.add_argument("--num-workers", type=int, default=None, help="autolung data workers (default: its own)")
    parser.add_argument("--nnunet-venv", type=Path, default=Path(os.environ.get("NNUNET_VENV", DEFAULT_VENV)))
    parser.add_argument("--skip-nnunet", action="store_true", help="only time autolung (needs nnU-Net for planning)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table into this file's train_step section")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    threads = os.cpu_count() or 1
    rows = []
    for key in args.datasets:
        work = Path(tempfile.mkdtemp(prefix=f"train_step_{key}_"))
        try:
            env = nnunet_env(work, threads)
            preprocessed = prepare_nnunet(key, args.data, work, args.nnunet_venv, args.cases, env)
            root = prepare_autolung(key, preprocessed, work, args.nnunet_venv, env)
            ours, theirs = None, None
            for _ in range(args.rounds):
                # Alternate the two tools so that both see the same (shared-machine) load.
                shutil.rmtree(root / "results", ignore_errors=True)
                ours = _faster(ours, time_autolung(key, root, work, args.epochs, args.iters, args.num_workers,
                                                   threads))
                if not args.skip_nnunet:
                    shutil.rmtree(work / "nnUNet_results", ignore_errors=True)
                    theirs = _faster(theirs, time_nnunet(key, work, args.nnunet_venv, env, args.epochs, args.iters))
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
            else:
                print(f"work folder kept: {work}")
        rows.append((f"{DATASETS[key][0]} {DATASETS[key][2]}", ours, theirs))
        ratio = f", ratio {ours.seconds_per_iteration / theirs.seconds_per_iteration:.2f}x" if theirs else ""
        their_text = f"{theirs.seconds_per_iteration:.2f}" if theirs else "n/a"
        print(f"{key}: autolung {ours.seconds_per_iteration:.2f} s/iter (data wait "
              f"{100 * ours.data_wait_fraction:.0f}%), nnU-Net {their_text} s/iter{ratio}", flush=True)
    section = markdown_section(rows, args, threads)
    print(section)
    if args.markdown:
        append_section(args.markdown, section)


if __name__ == "__main__":
    main()
