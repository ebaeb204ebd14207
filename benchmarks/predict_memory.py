"""Peak memory of ``autolung predict`` on a 512x512x600 CT, measured, not extrapolated.

The volume is a real NSCLC-Radiomics scan from ../shared/data/NSCLC_LungCT repeated along z to
600 slices (same spacing, same HU values), written as one ``.nii.gz``. The model is a small
random U-Net planned at the scan's own spacing (so nothing is resampled and the sliding window
covers the whole 600x512x512 grid); the network's size hardly changes the peak, which is set by
the volume-sized arrays: input, accumulators, weight map, labels. The whole process tree's peak
proportional set size (PSS, sampled every 50 ms) and the process's own peak RSS are printed,
with the size of one float32 copy of the volume for scale.

Usage::

    .venv/bin/python benchmarks/predict_memory.py [--slices 600] [--regions 2] [--threads 2] [--mode fast]
        [--precision auto] [--reference-commit 472380a]

``--mode`` is passed to ``autolung predict`` (``full`` without mirroring unless given: the
whole-volume tiling; ``fast``: body crop and window skipping).

``--reference-commit C`` runs the same command side by side with autolung at commit ``C`` (a
temporary git worktree put first on ``PYTHONPATH``) and prints the peak as a ratio to it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
import predict as bench  # noqa: E402  (shared helpers: process-tree memory, model writer)

REPO = Path(__file__).resolve().parents[1]


def tall_scan(target: Path, slices: int) -> list[int]:
    """Write the first NSCLC scan repeated along z to ``slices`` slices; return its (z, y, x) shape."""
    source = sorted(bench.SCANS.glob("*.nii.gz"))[0]
    image = sitk.ReadImage(str(source))
    array = sitk.GetArrayFromImage(image)
    reps = int(np.ceil(slices / array.shape[0]))
    tall = np.concatenate([array] * reps, axis=0)[:slices]
    out = sitk.GetImageFromArray(tall)
    out.SetSpacing(image.GetSpacing())
    out.SetOrigin(image.GetOrigin())
    out.SetDirection(image.GetDirection())
    target.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(out, str(target), useCompression=True)
    return list(tall.shape)


def small_model(folder: Path, spacing: list[float], patch: list[int], regions: int) -> None:
    """A 3-stage U-Net (8..32 features) at the scan's spacing, ``regions`` sigmoid outputs."""
    from autolung.labels import RegionMapping

    plans = bench.autolung_plans(spacing, patch, 3)
    config = plans.configurations["3d_fullres"]
    config.architecture.features_per_stage = [8, 16, 32]
    config.architecture.kernel_sizes = [[3, 3, 3]] * 3
    config.architecture.strides = [[1, 1, 1], [2, 2, 2], [2, 2, 2]]
    plans.labels = {"background": 0, **{f"label{i}": i for i in range(1, regions + 1)}}
    plans.region_mapping = RegionMapping.one_per_label(list(range(1, regions + 1)))
    bench.write_autolung_model(folder, plans, out_channels=regions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--regions", type=int, default=2)
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 160, 160])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mode", choices=("full", "fast"), default="full",
                        help="autolung predict --mode (mirroring off in both)")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="autolung predict --precision (float32: what an AVX2-only CPU runs)")
    parser.add_argument("--reference-commit", help="also run autolung at this commit, side by side")
    args = parser.parse_args()
    if not bench.SCANS.is_dir():
        sys.exit(f"scans not found at {bench.SCANS}")
    work = Path(tempfile.mkdtemp(prefix="autolung-predict-memory-"))
    try:
        scan = work / "inputs" / "tall_0000.nii.gz"
        shape = tall_scan(scan, args.slices)
        spacing = list(reversed(sitk.ReadImage(str(scan)).GetSpacing()))
        small_model(work / "model", [float(s) for s in spacing], args.patch, args.regions)
        command = [str(REPO / ".venv" / "bin" / "autolung"), "predict", "-i", str(scan.parent), "-o",
                   str(work / "out"), "--model", str(work / "model"), "--threads", str(args.threads),
                   "--disable-tta", "--no-progress", "--mode", args.mode, "--precision", args.precision]
        volume_mb = float(np.prod(shape)) * 4 / 1e6
        runs = {"current": measure(command, bench.environment(args.threads, work), work / "out", volume_mb)}
        runs["current"].update(mode=args.mode, precision=args.precision, shape_zyx=shape, regions=args.regions,
                               patch=args.patch)
        print(json.dumps(runs["current"]), flush=True)
        if args.reference_commit:
            tree = work / "reference_tree"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), args.reference_commit],
                           check=True, capture_output=True)
            environment = bench.environment(args.threads, work)
            environment["PYTHONPATH"] = os.pathsep.join([str(tree), environment.get("PYTHONPATH", "")])
            out = work / "out_reference"
            runs["reference"] = measure([*command[:5], str(out), *command[6:]], environment, out, volume_mb)
            runs["reference"]["commit"] = args.reference_commit
            print(json.dumps(runs["reference"]), flush=True)
            masks = [sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "tall.nii.gz"))) for folder in (work / "out", out)]
            differing = float((masks[0] != masks[1]).mean())
            print(f"peak PSS: {runs['current']['peak_tree_pss_mb']} MB against {runs['reference']['peak_tree_pss_mb']} "
                  f"MB at {args.reference_commit}: "
                  f"{runs['current']['peak_tree_pss_mb'] / runs['reference']['peak_tree_pss_mb']:.2f}x; "
                  f"time {runs['current']['seconds'] / runs['reference']['seconds']:.2f}x; voxels whose label differs: {differing:.2e}")
    finally:
        if args.reference_commit:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(work / "reference_tree")],
                           capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def measure(command: list[str], environment: dict, out: Path, volume_mb: float) -> dict:
    """Run ``command``; its wall time and peak PSS, also in float32 volumes, and the mask's size."""
    start = time.perf_counter()
    seconds, peak_pss = bench.run_measured(command, environment)
    mask = sitk.ReadImage(str(out / "tall.nii.gz"))
    return {"seconds": round(seconds, 1), "peak_tree_pss_mb": round(peak_pss), "float32_volume_mb": round(volume_mb),
            "peak_in_float32_volumes": round(peak_pss / volume_mb, 2), "mask_size_xyz": list(mask.GetSize()),
            "wall_s": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    main()
