"""Overlapped prediction (``-npp``/``-nps``) against the serial case loop, side by side.

Same process, same model (a 3-stage U-Net, 8..32 features, randomly initialised, at a coarser
spacing than the scans so preprocessing resamples), same real scans (NSCLC-Radiomics CT from
../shared/data, centre-cropped), TTA off. Settings alternate run by run so drifting load from
other jobs hits each about equally; each setting's time is the median of its repeats and the
masks of every setting are checked to equal the serial ones.

Usage::

    .venv/bin/python benchmarks/predict_overlap.py --cases 3 --repeats 1 --threads 2
    .venv/bin/python benchmarks/predict_overlap.py --device cuda --threads 8   # on a GPU machine
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
import predict as bench  # noqa: E402  (benchmarks/predict.py: scans and model helpers)
import predict_memory  # noqa: E402

SETTINGS = {"serial (0/0)": (0, 0), "npp 1 / nps 1": (1, 1), "npp 2 / nps 2": (2, 2)}


def run(images: Path, output: Path, model_folder: Path, workers: tuple[int, int], device: str) -> float:
    from autolung.inference.model import load_trained_model
    from autolung.inference.predictor import PredictionOptions, predict_paths

    model = load_trained_model(model_folder)
    options = PredictionOptions(mirror=False, device=device, mode="full", preprocessing_workers=workers[0],
                                export_workers=workers[1])
    start = time.perf_counter()
    predict_paths(images, output, [model], options)
    return time.perf_counter() - start


def masks(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted(folder.glob("*.nii.gz"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--crop", type=int, nargs=3, default=[64, 256, 256], help="centre crop Z Y X")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (where the overlap is meant to pay)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scans = bench.prepare_scans(work / "images", args.cases, args.crop)
        spacing = [s * 1.5 for s in bench.median_spacing(scans)]
        predict_memory.small_model(work / "model", spacing, [32, 64, 64], regions=2)
        times: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for repeat in range(args.repeats):
            for name, workers in SETTINGS.items():
                output = work / f"out_{repeat}_{workers[0]}_{workers[1]}"
                times[name].append(run(work / "images", output, work / "model", workers, args.device))
        reference = masks(work / "out_0_0_0")
        for name, workers in SETTINGS.items():
            other = masks(work / f"out_0_{workers[0]}_{workers[1]}")
            assert other.keys() == reference.keys() and all(np.array_equal(other[k], reference[k]) for k in other)
        base = statistics.median(times["serial (0/0)"])
        print(f"{len(scans)} NSCLC scans cropped to {args.crop}, spacing x1.5, TTA off, {args.device}, {args.threads} torch threads, "
              f"{args.repeats} repeats (median); masks identical in every setting")
        print(f"{'setting':<16} {'seconds':>8} {'ratio vs serial':>16}")
        for name in SETTINGS:
            value = statistics.median(times[name])
            print(f"{name:<16} {value:8.2f} {value / base:16.2f}")


if __name__ == "__main__":
    main()
