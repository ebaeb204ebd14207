"""Benchmark: validation Dice of autolung and nnU-Net v2 after the same wall-clock training time.

Usage::

    .venv/bin/python benchmarks/accuracy_at_equal_time.py [--data ../shared/data]
        [--datasets lungs2d hippocampus] [--budget lungs2d=240 hippocampus=360]
        [--nnunet-venv PATH] [--keep] [--json results.json]

For each dataset (FindingLungs2D 2d, Task04_Hippocampus 3d_fullres), fold 0, on the CPU:

1. nnU-Net: the dataset is linked into nnU-Net's raw layout (converted from the Decathlon where
   needed) and ``nnUNetv2_plan_and_preprocess`` plans and preprocesses the one configuration
   (timed, not part of the budget).
2. autolung: ``autolung plan_and_preprocess -d <data folder> -c CFG --root R`` (default planner).
3. Both tools use nnU-Net's fold 0 (``generate_crossval_split``, seed 12345, run by nnU-Net's
   own Python), written to nnU-Net's ``splits_final.json`` and to autolung's ``splits.json``,
   so both validate on the same cases.
4. nnU-Net's time per iteration is probed (3 short epochs; its trainer subclass skips the final
   validation), and the epoch count E of the equal-time run is chosen so that E epochs of I
   training and V validation iterations fill the budget. I is 250 (V 50, nnU-Net's default) when
   at least 5 such epochs fit, otherwise about an eighth of the iterations that fit (V = I/5).
5. autolung trains with ``--time-budget B --iters-per-epoch I --val-iters V`` (it stops inside an
   epoch when the budget is spent and decays its learning rate over the budget), then runs its
   final validation (sliding window, mirroring) into ``fold_0/validation/summary.json``.
6. nnU-Net trains E epochs of I + V iterations through a trainer subclass placed in its package
   folder (``nnUNetTrainer_<E>epochs``-style, see ../shared/reference/README.md) and runs its own
   final validation (mirroring) into ``fold_0/validation/summary.json``.

The training time of each tool is its training loop (autolung: the sum of its epoch times;
nnU-Net: from its first "Epoch 0" log line to its last epoch's end), printed beside the whole
process wall time and the final-validation time, which are outside the budget. Both tools use
the same torch thread count (all cores, nnU-Net's choice) and 2 threads for BLAS/OpenMP.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step  # noqa: E402  (shared helpers: raw layout, nnU-Net environment, conversion)

REPO = Path(__file__).resolve().parents[1]
TRAINER_NAME = "nnUNetTrainer_autolungEqualTime"
DEFAULT_BUDGETS = {"lungs2d": 240.0, "hippocampus": 360.0}

TRAINER_SOURCE = '''
import os
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class {name}(nnUNetTrainer):
    """nnUNetTrainer_Xepochs-style shortened training for autolung's equal-time benchmark."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        # nnU-Net records its __init__ arguments by name, so the signature must match exactly.
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ["AUTOLUNG_EQ_EPOCHS"])
        self.num_iterations_per_epoch = int(os.environ["AUTOLUNG_EQ_ITERS"])
        self.num_val_iterations_per_epoch = int(os.environ["AUTOLUNG_EQ_VAL_ITERS"])

    def perform_actual_validation(self, save_probabilities: bool = False):
        if os.environ.get("AUTOLUNG_EQ_SKIP_VALIDATION") == "1":
            return
        super().perform_actual_validation(save_probabilities)
'''.format(name=TRAINER_NAME)

SPLIT_SOURCE = r'''
import json, sys
from pathlib import Path
from nnunetv2.utilities.crossval_split import generate_crossval_split
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
folder = Path(sys.argv[1])
ids = infer_dataset_class(str(folder)).get_identifiers(str(folder))
splits = generate_crossval_split(sorted(ids), seed=12345, n_splits=5)
print(json.dumps(splits))
'''

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+): (.*)$")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def nnunet_log_events(path: Path) -> list[tuple[float, str]]:
    """(timestamp, message) of every line of an nnU-Net training log."""
    events = []
    for line in path.read_text().splitlines():
        match = LOG_LINE.match(line)
        if match:
            stamp = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            events.append((stamp, match.group(2).strip()))
    return events


def nnunet_epochs(path: Path) -> dict:
    """Epoch start times, epoch durations and training-loop time from an nnU-Net log."""
    events = nnunet_log_events(path)
    starts = [t for t, m in events if re.fullmatch(r"Epoch \d+", m)]
    durations = [float(x) for _, m in events for x in re.findall(r"^Epoch time: ([0-9.]+) s", m)]
    ends = [t for t, m in events if m.startswith("Epoch time:")]
    loop = (ends[-1] - starts[0]) if starts and ends else math.nan
    # the final validation logs one line per case after the last epoch
    validation = (events[-1][0] - ends[-1]) if ends else math.nan
    return {"starts": starts, "durations": durations, "loop_s": loop, "epochs": len(durations),
            "validation_s": validation}


def find_one(root: Path, pattern: str) -> Path:
    found = sorted(root.rglob(pattern))
    if not found:
        raise SystemExit(f"no {pattern} under {root}")
    return found[-1]


def nnunet_dice(summary: Path) -> dict[str, float]:
    payload = json.loads(summary.read_text())
    dice = {str(k): float(v["Dice"]) for k, v in payload["mean"].items()}
    dice["mean"] = float(payload["foreground_mean"]["Dice"])
    return dice


def autolung_dice(summary: Path) -> dict[str, float]:
    payload = json.loads(summary.read_text())
    dice = {str(k): float(v["dice"]["mean"]) for k, v in payload["per_class"].items()}
    dice["mean"] = float(sum(dice.values()) / len(dice))
    return dice


def nnunet_splits(venv: Path, preprocessed: Path, configuration: str, work: Path, env: dict[str, str]) -> list:
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    folder = preprocessed / plans["configurations"][configuration]["data_identifier"]
    script = work / "splits.py"
    script.write_text(SPLIT_SOURCE)
    out = subprocess.run([str(venv / "bin" / "python"), str(script), str(folder)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_nnunet(dataset_id: int, configuration: str, venv: Path, env: dict[str, str], results: Path, epochs: int,
               iters: int, val_iters: int, skip_validation: bool, log_file: Path) -> tuple[float, dict]:
    shutil.rmtree(results, ignore_errors=True)
    env = dict(env, AUTOLUNG_EQ_EPOCHS=str(epochs), AUTOLUNG_EQ_ITERS=str(iters),
               AUTOLUNG_EQ_VAL_ITERS=str(val_iters), AUTOLUNG_EQ_SKIP_VALIDATION="1" if skip_validation else "0")
    wall = train_step.run([str(venv / "bin" / "nnUNetv2_train"), str(dataset_id), configuration, "0", "-tr",
                           TRAINER_NAME, "-device", "cpu"], env, log_file)
    info = nnunet_epochs(find_one(results, "training_log_*.txt"))
    return wall, info


def choose_schedule(budget: float, probe: dict, probe_iters: int, probe_val: int) -> tuple[int, int, int, float]:
    """(epochs, iters, val_iters, seconds per training iteration) for nnU-Net to fill ``budget``."""
    # steady epochs: skip the first (warm-up); period = start-to-start, duration = train + val
    periods = [b - a for a, b in zip(probe["starts"][1:], probe["starts"][2:])]
    durations = probe["durations"][1:]
    duration = min(durations)
    overhead = max((min(periods) - duration) if periods else 0.0, 0.0)
    per_iter = duration / (probe_iters + probe_val / 3)  # a validation iteration ~ a third of a training one
    fit = budget / per_iter
    if fit >= 5 * (250 + 50 / 3):
        iters, val_iters = 250, 50
    else:
        iters = max(2, round(fit / 8))
        val_iters = max(1, iters // 5)
    period = (iters + val_iters / 3) * per_iter + overhead
    epochs = max(1, round(budget / period))
    return epochs, iters, val_iters, per_iter


def benchmark(key: str, args: argparse.Namespace, budget: float) -> dict:
    folder, layout, configuration, dataset_id = train_step.DATASETS[key]
    work = Path(tempfile.mkdtemp(prefix=f"eqtime_{key}_"))
    threads = os.cpu_count() or 1
    env = train_step.nnunet_env(work, threads)
    result: dict = {"dataset": f"{folder} {configuration}", "budget_s": budget, "work": str(work)}
    venv = args.nnunet_venv
    package = next((venv / "lib").glob("python3*/site-packages/nnunetv2/training/nnUNetTrainer"))
    (package / f"{TRAINER_NAME}.py").write_text(TRAINER_SOURCE)

    log(f"{key}: nnU-Net convert + plan_and_preprocess")
    start = time.perf_counter()
    preprocessed = train_step.prepare_nnunet(key, args.data, work, venv, 0, env)
    result["nnunet_preprocess_s"] = time.perf_counter() - start

    log(f"{key}: autolung plan_and_preprocess")
    root = work / "autolung_root"
    al_env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    result["autolung_preprocess_s"] = train_step.run(
        [str(REPO / ".venv" / "bin" / "autolung"), "plan_and_preprocess", "-d", str(args.data / folder), "-c",
         configuration, "--root", str(root), "-np", "2", "--no-progress"], al_env, work / "autolung_pp.log")
    al_name = next(p.name for p in (root / "preprocessed").iterdir() if p.is_dir())
    # The final validation evaluates against <root>/raw/<name>/labelsTr: point it at the data folder.
    raw = root / "raw" / al_name
    if not raw.exists():
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.symlink_to((args.data / folder).resolve())

    splits = nnunet_splits(venv, preprocessed, configuration, work, env)
    (preprocessed / "splits_final.json").write_text(json.dumps(splits, indent=1))
    (root / "preprocessed" / al_name / "splits.json").write_text(json.dumps(splits, indent=1))
    result["val_cases"] = len(splits[0]["val"])

    log(f"{key}: nnU-Net probe (3 epochs x {args.probe_iters[key]} iterations)")
    results = work / "nnUNet_results"
    probe_wall, probe = run_nnunet(dataset_id, configuration, venv, env, results, 3, args.probe_iters[key], 1, True,
                                   work / "nnunet_probe.log")
    epochs, iters, val_iters, per_iter = choose_schedule(budget, probe, args.probe_iters[key], 1)
    result.update(nnunet_probe_s_per_iter=per_iter, nnunet_probe_wall_s=probe_wall, iters_per_epoch=iters,
                  val_iters=val_iters, nnunet_epochs=epochs)
    log(f"{key}: nnU-Net {per_iter:.2f} s/iter -> {epochs} epochs x ({iters} + {val_iters} val) iterations")

    log(f"{key}: autolung train --time-budget {budget:.0f}s")
    command = [str(REPO / ".venv" / "bin" / "autolung"), "train", "-d", str(args.data / folder), "-c", configuration, "-f", "0",
               "--root", str(root), "--time-budget", f"{budget:.0f}s", "--iters-per-epoch", str(iters),
               "--val-iters", str(val_iters), "--device", "cpu"]
    result["autolung_wall_s"] = train_step.run(command, al_env, work / "autolung_train.log")
    fold = find_one(root / "results", "fold_0")
    records = [json.loads(line) for line in (fold / "training_log.jsonl").read_text().splitlines() if line.strip()]
    result["autolung_loop_s"] = sum(r["epoch_time_s"] for r in records)
    result["autolung_iterations"] = sum(r["iterations"] for r in records)
    result["autolung_epochs"] = len(records)
    summary = fold / "validation" / "summary.json"
    result["autolung_validation_s"] = summary.stat().st_mtime - (fold / "training_log.jsonl").stat().st_mtime
    result["autolung_dice"] = autolung_dice(summary)
    log(f"{key}: autolung {result['autolung_dice']}")

    log(f"{key}: nnU-Net train {epochs} epochs")
    wall, info = run_nnunet(dataset_id, configuration, venv, env, results, epochs, iters, val_iters, False,
                            work / "nnunet_train.log")
    summary = find_one(results, "summary.json")
    result.update(nnunet_wall_s=wall, nnunet_loop_s=info["loop_s"], nnunet_iterations=info["epochs"] * iters,
                  nnunet_dice=nnunet_dice(summary), nnunet_validation_s=info["validation_s"])
    log(f"{key}: nnU-Net {result['nnunet_dice']}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def table(rows: list[dict]) -> str:
    lines = ["| dataset | budget (s) | tool | training loop (s) | iterations | epochs x (train + val iters) | "
             "Dice per class | mean Dice | final validation (s) | process wall (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for tool, epochs in (("autolung", r["autolung_epochs"]), ("nnU-Net", r["nnunet_epochs"])):
            prefix = "autolung" if tool == "autolung" else "nnunet"
            dice = r[f"{prefix}_dice"]
            per_class = ", ".join(f"{k}: {v:.4f}" for k, v in dice.items() if k != "mean")
            lines.append(f"| {r['dataset']} | {r['budget_s']:.0f} | {tool} | {r[f'{prefix}_loop_s']:.0f} | "
                         f"{r[f'{prefix}_iterations']} | {epochs} x ({r['iters_per_epoch']} + {r['val_iters']}) | "
                         f"{per_class} | {dice['mean']:.4f} | {r[f'{prefix}_validation_s']:.0f} | "
                         f"{r[f'{prefix}_wall_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=train_step.DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=["lungs2d", "hippocampus"], choices=list(train_step.DATASETS))
    parser.add_argument("--budget", nargs="*", default=[], help="KEY=SECONDS, e.g. hippocampus=480")
    parser.add_argument("--nnunet-venv", type=Path,
                        default=Path(os.environ.get("NNUNET_VENV", train_step.DEFAULT_VENV)))
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    budgets = dict(DEFAULT_BUDGETS)
    for item in args.budget:
        k, v = item.split("=")
        budgets[k] = float(v)
    args.probe_iters = {"lungs2d": 10, "hippocampus": 2}
    rows = []
    for key in args.datasets:
        rows.append(benchmark(key, args, budgets[key]))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        print(table(rows), flush=True)


if __name__ == "__main__":
    main()
