"""Prediction speed and peak memory: autolung vs ``nnUNetv2_predict -device cpu`` on the same plan.

Both sides get the same plan (spacing, patch, U-Net topology, CT normalisation), a randomly
initialised network of that topology, the same scans (NSCLC-Radiomics CT from ../shared/data),
the same thread count, TTA on and off. Each side runs as a subprocess; its peak memory is the
largest sum of proportional set size (PSS) over its process tree, sampled every 50 ms.

Differences kept on purpose: nnU-Net predicts ``1 + labels`` softmax channels, autolung one
sigmoid channel per label; everything else in the network is identical.

Usage (2 threads, full scans, default nnU-Net-like plan)::

    .venv/bin/python benchmarks/predict.py --threads 2
    # faster smoke run: crop each scan, smaller patch
    .venv/bin/python benchmarks/predict.py --crop 32 192 192 --patch 32 96 96 --cases 1
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SCANS = REPO.parent / "shared" / "data" / "NSCLC_LungCT" / "imagesTr"
NNUNET_VENV = Path(os.environ.get("NNUNET_VENV", "~/.cache/nnunet-reference-venv")).expanduser()
DATASET_ID = 987
DATASET = f"Dataset{DATASET_ID}_PredictBench"
TRAINER_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"
# nnU-Net v2's default 3d_fullres topology for this kind of CT (6 stages, first stage in-plane only).
FEATURES = [32, 64, 128, 256, 320, 320]
STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
KERNELS = [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
CT_STATS = {"mean": -300.0, "std": 400.0, "percentile_00_5": -1024.0, "percentile_99_5": 400.0,
            "min": -1024.0, "max": 3000.0, "median": -200.0}


def _pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages split between the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_memory_mb(root_pid: int) -> float:
    """Memory (MB) of a process and all its descendants: summed PSS, so forked workers' shared
    pages are not counted twice."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += _pss_bytes(pid)
        stack.extend(children.get(pid, []))
    return total / 1024 ** 2


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a command; return (seconds, peak tree RSS in MB). Raises on failure."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0.0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_memory_mb(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    elapsed = time.perf_counter() - start
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed:\n{output[-3000:]}")
    return elapsed, peak[0]


def prepare_scans(target: Path, cases: int, crop: list[int] | None) -> list[Path]:
    """Copy (optionally centre-cropped) scans as ``<case>_0000.nii.gz``."""
    target.mkdir(parents=True)
    written = []
    for source in sorted(SCANS.glob("*.nii.gz"))[:cases]:
        image = sitk.ReadImage(str(source))
        if crop:
            size = list(image.GetSize())  # x, y, z
            want = [min(c, s) for c, s in zip(reversed(crop), size)]
            image = sitk.RegionOfInterest(image, want, [(s - w) // 2 for s, w in zip(size, want)])
        path = target / f"{source.name[:-7]}_0000.nii.gz"
        sitk.WriteImage(image, str(path))
        written.append(path)
    return written


def median_spacing(scans: list[Path]) -> list[float]:
    spacings = [list(reversed(sitk.ReadImage(str(p)).GetSpacing())) for p in scans]
    return [float(v) for v in np.median(spacings, axis=0)]


def autolung_plans(spacing: list[float], patch: list[int], stages: int):
    from autolung.labels import RegionMapping
    from autolung.planning.plans import ArchitecturePlan, ConfigurationPlan, NormalizationPlan, Plans

    arch = ArchitecturePlan("unet", 3, FEATURES[:stages], STRIDES[:stages], KERNELS[:stages], [2] * stages,
                            [2] * (stages - 1))
    norm = NormalizationPlan("CT", "ct", clip_low=CT_STATS["percentile_00_5"], clip_high=CT_STATS["percentile_99_5"],
                             mean=CT_STATS["mean"], std=CT_STATS["std"])
    configuration = ConfigurationPlan("3d_fullres", 3, spacing, patch, 2, arch, [norm], patch)
    return Plans("PredictBench", "default", ["CT"], {"background": 0, "lung": 1, "tumour": 2},
                 RegionMapping.one_per_label([1, 2]), {"3d_fullres": configuration})


def write_autolung_model(folder: Path, plans, out_channels: int = 2) -> None:
    import torch

    from autolung.network import build_network

    folder.mkdir(parents=True)
    plans.save(folder / "plans.json")
    arch = plans.configurations["3d_fullres"].architecture
    torch.manual_seed(0)
    net = build_network(arch, 1, out_channels, deep_supervision=False)
    (folder / "fold_0").mkdir()
    torch.save({"format": "autolung-checkpoint", "version": 1, "plans_digest": plans.digest(),
                "configuration": "3d_fullres", "fold": 0, "network_weights": net.state_dict()},
               folder / "fold_0" / "checkpoint_final.pt")
    (folder / "fold_0" / "training_info.json").write_text(json.dumps({
        "configuration": "3d_fullres", "planner": "default", "fold": 0, "plans_digest": plans.digest(),
        "in_channels": 1, "out_channels": out_channels}))


def nnunet_plans(spacing: list[float], patch: list[int], stages: int, shape: list[int]) -> dict:
    resampling = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    return {
        "dataset_name": DATASET, "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": spacing, "original_median_shape_after_transp": shape,
        "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": CT_STATS},
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": patch, "median_image_size_in_voxels": shape, "spacing": spacing,
            "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": resampling,
            "resampling_fn_seg_kwargs": {**resampling, "is_seg": True, "order": 1},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {**resampling, "order": 1},
            "batch_dice": False,
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": stages, "features_per_stage": FEATURES[:stages],
                    "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": KERNELS[:stages],
                    "strides": STRIDES[:stages], "n_conv_per_stage": [2] * stages,
                    "n_conv_per_stage_decoder": [2] * (stages - 1), "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}}}


_NNUNET_CHECKPOINT_SCRIPT = """
import json, sys, torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
folder = sys.argv[1]
plans = json.load(open(folder + '/plans.json')); dataset = json.load(open(folder + '/dataset.json'))
manager = PlansManager(plans); configuration = manager.get_configuration('3d_fullres')
torch.manual_seed(0)
net = nnUNetTrainer.build_network_architecture(manager, configuration, 1, 3, enable_deep_supervision=False)
torch.save({'network_weights': net.state_dict(), 'trainer_name': 'nnUNetTrainer',
            'inference_allowed_mirroring_axes': (0, 1, 2),
            'init_args': {'plans': plans, 'configuration': '3d_fullres', 'fold': 0, 'dataset_json': dataset}},
           folder + '/fold_0/checkpoint_final.pth')
"""


def write_nnunet_model(results: Path, plans: dict) -> None:
    folder = results / DATASET / TRAINER_FOLDER
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=1))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "lung": 1, "tumour": 2},
        "numTraining": 3, "file_ending": ".nii.gz"}))
    subprocess.run([str(NNUNET_VENV / "bin" / "python"), "-c", _NNUNET_CHECKPOINT_SCRIPT, str(folder)], check=True)


def environment(threads: int, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                "nnUNet_raw": str(work / "nnunet_raw"), "nnUNet_preprocessed": str(work / "nnunet_pre"),
                "nnUNet_results": str(work / "nnunet_results"), "nnUNet_def_n_proc": "1"})
    return env


def commands(work: Path, inputs: Path, tta: bool, threads: int, precision: str) -> dict[str, list[str]]:
    autolung = [str(REPO / ".venv" / "bin" / "autolung"), "predict", "-i", str(inputs), "-o",
                str(work / f"out_autolung_{tta}"), "--model", str(work / "autolung_model"), "--threads",
                str(threads), "--precision", precision, "--no-progress", "--overwrite", "--mode", "full"]
    nnunet = [str(NNUNET_VENV / "bin" / "nnUNetv2_predict"), "-i", str(inputs), "-o", str(work / f"out_nnunet_{tta}"),
              "-d", str(DATASET_ID), "-c", "3d_fullres", "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1"]
    if not tta:
        autolung.append("--disable-tta")
        nnunet.append("--disable_tta")
    return {"autolung": autolung, "nnunet": nnunet}


def measure_alternating(runs: dict[str, list[str]], env: dict[str, str], repeats: int) -> dict[str, tuple[float, float]]:
    """Run each command ``repeats`` times, alternating which goes first; keep the fastest time.

    On a shared machine the minimum is the estimate least disturbed by other jobs; peak memory
    is the largest seen.
    """
    best: dict[str, tuple[float, float]] = {}
    for repeat in range(repeats):
        order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in order:
            seconds, peak = run_measured(runs[name], env)
            previous = best.get(name, (float("inf"), 0.0))
            best[name] = (min(previous[0], seconds), max(previous[1], peak))
    return {name: best[name] for name in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--crop", type=int, nargs=3, default=None, help="centre crop z y x of each scan")
    parser.add_argument("--patch", type=int, nargs=3, default=[80, 192, 160])
    parser.add_argument("--stages", type=int, default=6)
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="autolung's --precision (auto: bfloat16 where the CPU runs it natively, else float32)")
    parser.add_argument("--tta", choices=["on", "off", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, alternating order; fastest kept")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if not SCANS.is_dir():
        sys.exit(f"scans not found at {SCANS}")
    work = Path(tempfile.mkdtemp(prefix="autolung-predict-bench-"))
    try:
        scans = prepare_scans(work / "inputs", args.cases, args.crop)
        spacing = median_spacing(scans)
        shape = list(reversed(sitk.ReadImage(str(scans[0])).GetSize()))
        write_autolung_model(work / "autolung_model", autolung_plans(spacing, args.patch, args.stages))
        write_nnunet_model(work / "nnunet_results", nnunet_plans(spacing, args.patch, args.stages, shape))
        env = environment(args.threads, work)
        results = []
        for tta in {"on": [True], "off": [False], "both": [False, True]}[args.tta]:
            row = {"tta": tta, "cases": len(scans), "shape_zyx": shape, "threads": args.threads,
                   "patch": args.patch, "precision": args.precision, "repeats": args.repeats}
            runs = commands(work, work / "inputs", tta, args.threads, args.precision)
            for name, (seconds, peak) in measure_alternating(runs, env, args.repeats).items():
                row[f"{name}_s_per_case"] = seconds / len(scans)
                row[f"{name}_peak_mb"] = peak
            row["time_ratio"] = row["autolung_s_per_case"] / row["nnunet_s_per_case"]
            row["ram_ratio"] = row["autolung_peak_mb"] / row["nnunet_peak_mb"]
            print(json.dumps(row), flush=True)
            results.append(row)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
