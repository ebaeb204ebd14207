"""Benchmark: autolung plan_and_preprocess against nnUNetv2_plan_and_preprocess on the same data.

Usage::

    .venv/bin/python benchmarks/plan_and_preprocess.py [--data ../shared/data] [-np 2]
        [--datasets Task04_Hippocampus NSCLC_LungCT] [--nnunet-venv PATH] [--skip-nnunet]

For each dataset both tools start from a fresh temporary root (the raw data is linked, never
written) and run fingerprint + planning + preprocessing of all default configurations with the
same number of worker processes. The script reports wall time and peak memory of each process
tree, sampled every 50 ms: the sum over the tree of each process's proportional set size (PSS,
shared pages split between the processes sharing them; RSS where PSS is unavailable), so forked
and spawned workers are counted alike. nnU-Net's dataset conversion (``nnUNetv2_convert_MSD_dataset``)
runs before its timed step and is not counted, as autolung reads the Decathlon layout directly.

nnU-Net comes from ``--nnunet-venv``, else ``$NNUNET_VENV``, else ``~/.cache/nnunet-reference-venv``
(made by ``../shared/reference/setup_nnunet.sh``); without it only autolung is measured.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_VENV = Path("~/.cache/nnunet-reference-venv").expanduser()
SAMPLE_SECONDS = 0.05


@dataclass
class Measurement:
    """Wall time (s) and peak memory (MiB) of one command's process tree."""

    wall_s: float
    peak_mib: float
    returncode: int


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        stack.extend(_children(current))
    return pids


def _memory_kib(pid: int) -> int:
    """PSS of one process in KiB (RSS when smaps_rollup is unreadable); 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(command: list[str], env: dict[str, str], log_path: Path) -> Measurement:
    """Run ``command``, sampling the memory of its process tree until it exits."""
    peak = 0
    with open(log_path, "w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, sum(_memory_kib(p) for p in _tree(process.pid)))
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = process.wait()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    return Measurement(wall, peak / 1024, returncode)


def run_autolung(dataset: Path, work: Path, processes: int) -> Measurement:
    root = work / "autolung_root"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / dataset.name).symlink_to(dataset.resolve())
    command = [sys.executable, "-m", "autolung_cli", "plan_and_preprocess", "-d", dataset.name,
               "--root", str(root), "-np", str(processes), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = measure(command, env, work / "autolung.log")
    _check(result, work / "autolung.log", "autolung")
    return result


def _msd_copy(dataset: Path, target: Path) -> Path:
    """Decathlon folder for nnU-Net's converter: links to the data plus the empty imagesTs it insists on."""
    target.mkdir(parents=True)
    for name in ("dataset.json", "imagesTr", "labelsTr"):
        (target / name).symlink_to((dataset / name).resolve())
    (target / "imagesTs").mkdir()
    return target


def run_nnunet(dataset: Path, work: Path, processes: int, venv: Path, dataset_id: int) -> Measurement:
    env = dict(os.environ, nnUNet_raw=str(work / "nnUNet_raw"), nnUNet_preprocessed=str(work / "nnUNet_preprocessed"),
               nnUNet_results=str(work / "nnUNet_results"))
    task_name = dataset.name if dataset.name.startswith("Task") else f"Task{dataset_id % 100:02d}_{dataset.name.replace('_', '')}"
    task = _msd_copy(dataset, work / "msd" / task_name)
    convert = [str(venv / "bin" / "nnUNetv2_convert_MSD_dataset"), "-i", str(task), "-overwrite_id", str(dataset_id),
               "-np", str(processes)]
    converted = subprocess.run(convert, env=env, capture_output=True, text=True)
    if converted.returncode != 0:
        raise SystemExit(f"nnU-Net conversion failed:\n{converted.stdout}\n{converted.stderr}")
    command = [str(venv / "bin" / "nnUNetv2_plan_and_preprocess"), "-d", str(dataset_id), "-npfp", str(processes),
               "-np", str(processes)]
    result = measure(command, env, work / "nnunet.log")
    _check(result, work / "nnunet.log", "nnU-Net")
    return result


def _check(result: Measurement, log: Path, who: str) -> None:
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{who} failed (exit {result.returncode}); end of {log}:\n{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=["Task04_Hippocampus", "NSCLC_LungCT"])
    parser.add_argument("-np", "--num-processes", type=int, default=2)
    parser.add_argument("--nnunet-venv", type=Path, default=Path(os.environ.get("NNUNET_VENV", DEFAULT_VENV)))
    parser.add_argument("--skip-nnunet", action="store_true")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary roots (printed).")
    args = parser.parse_args()
    venv = args.nnunet_venv.expanduser()
    have_nnunet = not args.skip_nnunet and (venv / "bin" / "nnUNetv2_plan_and_preprocess").is_file()
    if not have_nnunet and not args.skip_nnunet:
        print(f"nnU-Net venv not found at {venv} (run ../shared/reference/setup_nnunet.sh); measuring autolung only")
    rows = []
    for index, name in enumerate(args.datasets):
        dataset = args.data / name
        if not dataset.is_dir():
            print(f"skipping {name}: not found at {dataset}")
            continue
        work = Path(tempfile.mkdtemp(prefix=f"bench_pp_{name}_"))
        try:
            ours = run_autolung(dataset, work, args.num_processes)
            theirs = run_nnunet(dataset, work, args.num_processes, venv, 900 + index) if have_nnunet else None
        finally:
            if args.keep:
                print(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        rows.append((name, ours, theirs))
        _print_row(name, ours, theirs)
    print()
    print(f"| dataset | autolung wall (s) | nnU-Net wall (s) | wall ratio | autolung peak (MiB) | "
          f"nnU-Net peak (MiB) | memory ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, ours, theirs in rows:
        if theirs is None:
            print(f"| {name} | {ours.wall_s:.1f} | - | - | {ours.peak_mib:.0f} | - | - |")
        else:
            print(f"| {name} | {ours.wall_s:.1f} | {theirs.wall_s:.1f} | {ours.wall_s / theirs.wall_s:.2f} | "
                  f"{ours.peak_mib:.0f} | {theirs.peak_mib:.0f} | {ours.peak_mib / theirs.peak_mib:.2f} |")


def _print_row(name: str, ours: Measurement, theirs: Measurement | None) -> None:
    line = f"{name}: autolung {ours.wall_s:.1f} s, peak {ours.peak_mib:.0f} MiB"
    if theirs is not None:
        line += (f"; nnU-Net {theirs.wall_s:.1f} s, peak {theirs.peak_mib:.0f} MiB; "
                 f"ratios wall {ours.wall_s / theirs.wall_s:.2f}, memory {ours.peak_mib / theirs.peak_mib:.2f}")
    print(line, flush=True)


if __name__ == "__main__":
    main()
