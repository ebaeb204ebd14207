"""Running real nnU-Net v2 models: ``autolung predict --model`` against ``nnUNetv2_predict -device cpu``.

For each network kind, nnU-Net v2 2.8.1 (the reference environment, ``../shared/reference``) is
trained briefly on a real set; both tools then predict the same held-out cases (nnU-Net's own
fold-0 validation split: other patients than the training cases) from the same model folder:

- 2D plain U-Net: FindingLungs2D (``2d``, nnUNetPlans);
- 3D plain U-Net: Task04_Hippocampus (``3d_fullres``, nnUNetPlans);
- 3D ResEnc M: Task04_Hippocampus (``3d_fullres``, nnUNetResEncUNetMPlans).

Training is deliberately short (a trainer subclass with few epochs and iterations, written into the
reference environment): the comparison is about running the same weights, not about their quality.

Figures per kind, with the same TTA setting on both sides, autolung in float32:

- mask agreement on foreground voxels (voxels that either tool calls foreground; 1.0 with a count of
  0 when neither predicts any foreground);
- largest absolute probability difference (nnU-Net's saved ``.npz`` against autolung's float32
  probabilities from the library, both on the original grid);
- mean foreground Dice of each against the reference labels;
- wall time of each command (whole run: start-up, reading, preprocessing, prediction, writing) and
  the ratio autolung / nnU-Net.

``--float32-sums`` also runs nnU-Net with its sliding-window sums in float32 (it sums Gaussian-weighted
logits in float16) and reports autolung's largest probability difference to that run: it separates
nnU-Net's float16 rounding from any difference in how the two tools compute.

Where the CPU runs bfloat16 natively (AVX-512 BF16 or AMX), autolung also runs with ``--precision
auto`` (bfloat16 autocast after its numerical check), as a user gets it: its wall time against
nnU-Net's float32 run, its mean Dice and its foreground agreement with nnU-Net's masks
(``--bf16 off`` skips it).

A model trained elsewhere (a longer run, so that a 3D model predicts foreground and Dice agreement
means something) is compared the same way with ``--trained MODEL_FOLDER IMAGES LABELS``: nnU-Net runs
it with ``nnUNetv2_predict_from_modelfolder``; the images and labels are its held-out test cases (for
example a ``benchmarks/time_to_accuracy.py`` nnU-Net run folder: ``nnUNet_results/.../<trainer>__<plans>__<configuration>``,
``test_images``, ``test_labels``).

Usage::

    /work/shared/reference/setup_nnunet.sh /work/nnunet_venv
    NNUNET_VENV=/work/nnunet_venv python benchmarks/nnunet_models.py --work /tmp/nnunet_models --cases 5
    NNUNET_VENV=/work/nnunet_venv python benchmarks/nnunet_models.py --work /tmp/nnunet_models --kinds --cases 10 \
        --trained RUN/nnUNet_results/Dataset905_Task04_Hippocampus/nnUNetTrainer_autolungBudget__nnUNetPlans__3d_fullres \
        RUN/test_images RUN/test_labels

The work folder keeps nnU-Net's raw/preprocessed/results folders, so a rerun skips finished training.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
NNUNET_VENV = Path(os.environ.get("NNUNET_VENV", "~/.cache/nnunet-reference-venv")).expanduser()
TRAINER = "nnUNetTrainer_autolungShort"
TRAINER_SOURCE = '''# Written by autolung's benchmarks/nnunet_models.py: a short nnU-Net training for the comparison.
import os
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_autolungShort(nnUNetTrainer):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get("AUTOLUNG_NNUNET_EPOCHS", "3"))
        self.num_iterations_per_epoch = int(os.environ.get("AUTOLUNG_NNUNET_ITERATIONS", "20"))
        self.num_val_iterations_per_epoch = 2

    def perform_actual_validation(self, save_probabilities: bool = False):
        pass
'''


# Runs nnU-Net's own predict entry point with its sliding-window sums in float32 instead of float16
# (nnU-Net sums Gaussian-weighted logits, scaled by 10, in float16): isolates that rounding.
FLOAT32_SUMS_WRAPPER = '''import inspect, sys, textwrap

# Guarded: nnU-Net's preprocessing workers are spawned and import this file again.
if __name__ == "__main__":
    from nnunetv2.inference import predict_from_raw_data as module

    method = module.nnUNetPredictor._internal_predict_sliding_window_return_logits
    source = textwrap.dedent(inspect.getsource(method))
    if source.count("dtype=torch.half") != 2:
        raise SystemExit("nnU-Net's sliding window changed: its float16 sums were not found")
    namespace = dict(vars(module))
    exec(source.replace("dtype=torch.half", "dtype=torch.float32"), namespace)
    module.nnUNetPredictor._internal_predict_sliding_window_return_logits = namespace[method.__name__]
    entry = sys.argv.pop(1)
    sys.argv[0] = entry
    getattr(module, {"nnUNetv2_predict": "predict_entry_point",
                     "nnUNetv2_predict_from_modelfolder": "predict_entry_point_modelfolder"}[entry])()
'''


@dataclass
class Kind:
    """One network kind to compare."""

    name: str
    dataset_id: int
    dataset: str
    configuration: str
    plans: str
    planner: str | None = None  # nnUNetv2_plan_experiment -pl, for non-default plans


KINDS = [
    Kind("2D plain U-Net, FindingLungs2D", 901, "Dataset901_FindingLungs2D", "2d", "nnUNetPlans"),
    Kind("3D plain U-Net, Hippocampus", 902, "Dataset902_Hippocampus", "3d_fullres", "nnUNetPlans"),
    Kind("3D ResEnc M, Hippocampus", 902, "Dataset902_Hippocampus", "3d_fullres", "nnUNetResEncUNetMPlans",
         "nnUNetPlannerResEncM"),
]


def _env(work: Path, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(nnUNet_raw=str(work / "raw"), nnUNet_preprocessed=str(work / "preprocessed"),
               nnUNet_results=str(work / "results"), OMP_NUM_THREADS=str(threads), nnUNet_n_proc_DA="1",
               AUTOLUNG_NNUNET_EPOCHS=env.get("AUTOLUNG_NNUNET_EPOCHS", "3"),
               AUTOLUNG_NNUNET_ITERATIONS=env.get("AUTOLUNG_NNUNET_ITERATIONS", "20"))
    return env


def _run(command: list[str], env: dict[str, str]) -> float:
    """Run a command, fail loudly, return its wall time in seconds."""
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return time.perf_counter() - start


def _install_trainer() -> None:
    site = next((NNUNET_VENV / "lib").glob("python3*/site-packages"))
    target = site / "nnunetv2" / "training" / "nnUNetTrainer" / f"{TRAINER}.py"
    if not target.is_file() or target.read_text() != TRAINER_SOURCE:
        target.write_text(TRAINER_SOURCE)


def _prepare_raw(work: Path, env: dict[str, str]) -> None:
    raw = work / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    lungs = raw / "Dataset901_FindingLungs2D"
    if not lungs.exists():
        lungs.symlink_to(DATA / "FindingLungs2D")
    if not (raw / "Dataset902_Hippocampus").exists():
        # nnU-Net's MSD converter refuses a task without imagesTs; the shared folder stays untouched.
        source = work / "msd" / "Task04_Hippocampus"
        (source / "imagesTs").mkdir(parents=True, exist_ok=True)
        for name in ("imagesTr", "labelsTr"):
            if not (source / name).exists():
                (source / name).symlink_to(DATA / "Task04_Hippocampus" / name)
        shutil.copy(DATA / "Task04_Hippocampus" / "dataset.json", source / "dataset.json")
        _run([str(NNUNET_VENV / "bin" / "nnUNetv2_convert_MSD_dataset"), "-i", str(source), "-overwrite_id", "902",
              "-np", "1"], env)


def model_folder(work: Path, kind: Kind) -> Path:
    return work / "results" / kind.dataset / f"{TRAINER}__{kind.plans}__{kind.configuration}"


def _train(work: Path, kind: Kind, env: dict[str, str]) -> None:
    """Plan, preprocess and train fold 0 briefly, unless a finished checkpoint exists."""
    if (model_folder(work, kind) / "fold_0" / "checkpoint_final.pth").is_file():
        return
    bin_ = NNUNET_VENV / "bin"
    plans_file = work / "preprocessed" / kind.dataset / f"{kind.plans}.json"
    if not plans_file.is_file():
        if kind.planner:
            if not (work / "preprocessed" / kind.dataset / "dataset_fingerprint.json").is_file():
                _run([str(bin_ / "nnUNetv2_extract_fingerprint"), "-d", str(kind.dataset_id), "-np", "1"], env)
            _run([str(bin_ / "nnUNetv2_plan_experiment"), "-d", str(kind.dataset_id), "-pl", kind.planner], env)
            # ResEnc M plans batch 58 for a 24 GB GPU; on 2 CPU cores one such step takes minutes. The
            # batch size only changes training, not how the trained network predicts.
            plans = json.loads(plans_file.read_text())
            plans["configurations"][kind.configuration]["batch_size"] = 2
            plans_file.write_text(json.dumps(plans, indent=2))
        else:
            _run([str(bin_ / "nnUNetv2_plan_and_preprocess"), "-d", str(kind.dataset_id), "-c", kind.configuration,
                  "-np", "1"], env)
    # ResEnc plans reuse the default plans' preprocessed data (same data_identifier): do not redo it.
    identifier = json.loads(plans_file.read_text())["configurations"][kind.configuration].get(
        "data_identifier", f"{kind.plans}_{kind.configuration}")
    if not (work / "preprocessed" / kind.dataset / identifier).is_dir():
        _run([str(bin_ / "nnUNetv2_preprocess"), "-d", str(kind.dataset_id), "-plans_name", kind.plans,
              "-c", kind.configuration, "-np", "1"], env)
    _run([str(bin_ / "nnUNetv2_train"), str(kind.dataset_id), kind.configuration, "0", "-tr", TRAINER,
          "-p", kind.plans, "-device", "cpu"], env)


@dataclass
class Target:
    """One model and its held-out cases, as both tools are given them."""

    name: str
    model: Path
    inputs: Path
    case_ids: list[str]
    labels_folder: Path
    file_ending: str
    labels: list[int]
    nnunet_command: list[str]  # nnU-Net's predict command without inputs, outputs and TTA

    @property
    def tag(self) -> str:
        return self.model.name


def _foreground_labels(dataset_json: Path) -> list[int]:
    labels = json.loads(dataset_json.read_text())["labels"]
    return [v for k, v in labels.items() if k != "background" and isinstance(v, int)]


def kind_target(work: Path, kind: Kind, count: int) -> Target:
    """A briefly trained kind, on the first ``count`` cases of nnU-Net's fold-0 validation split."""
    inputs, case_ids = _test_cases(work, kind, count)
    dataset_json = work / "raw" / kind.dataset / "dataset.json"
    command = [str(NNUNET_VENV / "bin" / "nnUNetv2_predict"), "-d", str(kind.dataset_id), "-c", kind.configuration,
               "-tr", TRAINER, "-p", kind.plans, "-f", "0"]
    return Target(kind.name, model_folder(work, kind), inputs, case_ids, work / "raw" / kind.dataset / "labelsTr",
                  json.loads(dataset_json.read_text())["file_ending"], _foreground_labels(dataset_json), command)


def trained_target(work: Path, model: Path, images: Path, labels: Path, count: int) -> Target:
    """A model folder trained elsewhere, on the first ``count`` of its held-out test images."""
    dataset_json = model / "dataset.json"
    ending = json.loads(dataset_json.read_text())["file_ending"]
    case_ids = sorted(path.name[: -len(f"_0000{ending}")] for path in images.glob(f"*_0000{ending}"))[:count]
    if not case_ids:
        raise SystemExit(f"{images}: no images named <case>_0000{ending}")
    inputs = work / "inputs" / f"trained_{model.name}"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    for case in case_ids:
        shutil.copy(images / f"{case}_0000{ending}", inputs)
    command = [str(NNUNET_VENV / "bin" / "nnUNetv2_predict_from_modelfolder"), "-m", str(model), "-f", "0"]
    return Target(f"trained {model.name}", model, inputs, case_ids, labels, ending, _foreground_labels(dataset_json),
                  command)


def _test_cases(work: Path, kind: Kind, count: int) -> tuple[Path, list[str]]:
    """Input folder with the first ``count`` cases of nnU-Net's fold-0 validation split (held-out patients)."""
    splits = json.loads((work / "preprocessed" / kind.dataset / "splits_final.json").read_text())
    cases = sorted(splits[0]["val"])[:count]
    dataset = json.loads((work / "raw" / kind.dataset / "dataset.json").read_text())
    ending = dataset["file_ending"]
    folder = work / "inputs" / kind.dataset
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for case in cases:
        shutil.copy(work / "raw" / kind.dataset / "imagesTr" / f"{case}_0000{ending}", folder)
    return folder, cases


def _read(path: Path) -> np.ndarray:
    from autolung.io.images import read_label

    return read_label(path)[0]


def _dice(a: np.ndarray, b: np.ndarray, labels: list[int]) -> float:
    scores = []
    for label in labels:
        x, y = a == label, b == label
        total = x.sum() + y.sum()
        scores.append(1.0 if total == 0 else 2.0 * np.logical_and(x, y).sum() / total)
    return float(np.mean(scores))


def _autolung_probabilities(model: Path, inputs: Path, mirror: bool, threads: int) -> dict[str, np.ndarray]:
    """float32 probabilities on the original grid, straight from the library (the CLI stores float16)."""
    import contextlib

    import torch

    from autolung.inference.inputs import discover_cases, read_input_case
    from autolung.inference.predictor import PredictionOptions, predict_case_probabilities
    from autolung.inference.sources import select_models

    torch.set_num_threads(threads)
    options = PredictionOptions(mode="full", mirror=mirror, precision="float32")
    result = {}
    with contextlib.ExitStack() as stack:
        models = select_models(stack, None, None, None, [0], model_path=model).models
        for case in discover_cases(inputs):
            image, geometry = read_input_case(case, len(models[0].plans.channel_names))
            result[case.case_id] = predict_case_probabilities(image, geometry, models, options)
    return result


def native_bfloat16() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _foreground_agreement(first: list[np.ndarray], second: list[np.ndarray]) -> tuple[float, int]:
    agree = union = 0
    for a, b in zip(first, second):
        foreground = (a > 0) | (b > 0)
        agree += int((a[foreground] == b[foreground]).sum())
        union += int(foreground.sum())
    return (agree / union if union else 1.0), union


def _autolung_auto_precision(work: Path, target: Target, mirror: bool, threads: int, env: dict[str, str],
                             nnunet_masks: list[np.ndarray], truths: list[np.ndarray], nnunet_s: float) -> dict:
    """autolung with ``--precision auto`` (bfloat16 where native): time, Dice, agreement with nnU-Net."""
    tag = "tta" if mirror else "notta"
    output = work / "out" / f"{target.tag}_{tag}_autolung_auto"
    shutil.rmtree(output, ignore_errors=True)
    seconds = _run([sys.executable, "-m", "autolung_cli", "predict", "-i", str(target.inputs), "-o", str(output),
                    "--model", str(target.model), "-f", "0", "--precision", "auto",
                    "--threads", str(threads), "--no-progress", "--mode", "full",
                    *([] if mirror else ["--disable-tta"])], env)
    masks = [_read(output / f"{case}{target.file_ending}") for case in target.case_ids]
    agreement, _ = _foreground_agreement(nnunet_masks, masks)
    dice = float(np.mean([_dice(mask, truth, target.labels) for mask, truth in zip(masks, truths)]))
    return {"autolung_auto_s": seconds, "time_ratio_auto": seconds / nnunet_s, "dice_autolung_auto": dice,
            "foreground_agreement_auto": agreement}


def _nnunet_float32_sums(work: Path, target: Target, tta: list[str], env: dict[str, str]) -> Path:
    """nnU-Net's probabilities with its sliding-window sums in float32 (:data:`FLOAT32_SUMS_WRAPPER`)."""
    wrapper = work / "nnunet_float32_sums.py"
    wrapper.write_text(FLOAT32_SUMS_WRAPPER)
    output = work / "out" / f"{target.tag}_{'notta' if tta else 'tta'}_nnunet_float32_sums"
    shutil.rmtree(output, ignore_errors=True)
    _run([str(NNUNET_VENV / "bin" / "python"), str(wrapper), Path(target.nnunet_command[0]).name,
          *target.nnunet_command[1:], "-i", str(target.inputs), "-o", str(output), "-device", "cpu",
          "--save_probabilities", "-npp", "1", "-nps", "1", *tta], env)
    return output


def _max_difference(folder: Path, probabilities: dict[str, np.ndarray]) -> float:
    largest = 0.0
    for case, ours in probabilities.items():
        with np.load(folder / f"{case}.npz") as saved:
            reference = saved["probabilities"].astype(np.float32).reshape(ours.shape)
        largest = max(largest, float(np.abs(reference - ours).max()))
    return largest


def compare(work: Path, target: Target, mirror: bool, threads: int, bf16: bool = False,
            float32_sums: bool = False) -> dict:
    env = _env(work, threads)
    tag = "tta" if mirror else "notta"
    out_nn, out_al = work / "out" / f"{target.tag}_{tag}_nnunet", work / "out" / f"{target.tag}_{tag}_autolung"
    for folder in (out_nn, out_al):
        shutil.rmtree(folder, ignore_errors=True)
    tta = [] if mirror else ["--disable_tta"]
    nnunet_s = _run([*target.nnunet_command, "-i", str(target.inputs), "-o", str(out_nn), "-device", "cpu",
                     "--save_probabilities", "-npp", "1", "-nps", "1", *tta], env)
    autolung_env = dict(env, PYTHONPATH=str(REPO))
    autolung_s = _run([sys.executable, "-m", "autolung_cli", "predict", "-i", str(target.inputs), "-o", str(out_al),
                       "--model", str(target.model), "-f", "0", "--precision", "float32",
                       "--threads", str(threads), "--no-progress", "--mode", "full",
                       *([] if mirror else ["--disable-tta"])],
                      autolung_env)
    probabilities = _autolung_probabilities(target.model, target.inputs, mirror, threads)
    ending, labels, case_ids = target.file_ending, target.labels, target.case_ids
    max_diff = inner_diff = 0.0
    over, voxels = 0, 0
    dice_nn, dice_al = [], []
    nnunet_masks, autolung_masks, truths = [], [], []
    for case in case_ids:
        mask_nn, mask_al = _read(out_nn / f"{case}{ending}"), _read(out_al / f"{case}{ending}")
        autolung_masks.append(mask_al)
        with np.load(out_nn / f"{case}.npz") as saved:
            reference = saved["probabilities"].astype(np.float32)
        ours = probabilities[case]
        difference = np.abs(reference.reshape(ours.shape) - ours)
        max_diff = max(max_diff, float(difference.max()))
        # nnU-Net accumulates in float16 with Gaussian weights that underflow near the volume's faces
        # (patch borders): report the interior (>= 4 voxels from every face) separately.
        inner = difference[(slice(None), *(slice(4, -4) if n > 8 else slice(None) for n in ours.shape[1:]))]
        inner_diff = max(inner_diff, float(inner.max()))
        over += int((difference > 1e-3).sum())
        voxels += difference.size
        truth = _read(target.labels_folder / f"{case}{ending}")
        nnunet_masks.append(mask_nn)
        truths.append(truth)
        dice_nn.append(_dice(mask_nn, truth, labels))
        dice_al.append(_dice(mask_al, truth, labels))
    agreement, union = _foreground_agreement(nnunet_masks, autolung_masks)
    if float32_sums:
        folder = _nnunet_float32_sums(work, target, tta, env)
        extra_sums = {"max_probability_difference_float32_sums": _max_difference(folder, probabilities)}
    else:
        extra_sums = {}
    extra = _autolung_auto_precision(work, target, mirror, threads, autolung_env, nnunet_masks, truths,
                                     nnunet_s) if bf16 else {}
    return {**extra, **extra_sums, "kind": target.name, "tta": mirror, "cases": len(case_ids),
            "foreground_voxels": union, "foreground_agreement": agreement, "max_probability_difference": max_diff,
            "max_probability_difference_interior": inner_diff, "share_over_1e-3": over / max(voxels, 1),
            "dice_nnunet": float(np.mean(dice_nn)), "dice_autolung": float(np.mean(dice_al)),
            "nnunet_s": nnunet_s, "autolung_s": autolung_s, "time_ratio": autolung_s / nnunet_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/autolung_nnunet_models"))
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kinds", nargs="*", type=int, default=list(range(len(KINDS))),
                        help="indices into KINDS (0: 2D, 1: 3D plain, 2: 3D ResEnc M)")
    parser.add_argument("--trained", nargs=3, type=Path, action="append", default=[],
                        metavar=("MODEL_FOLDER", "IMAGES", "LABELS"),
                        help="also compare a model trained elsewhere on its held-out images and labels")
    parser.add_argument("--float32-sums", action="store_true",
                        help="also run nnU-Net with its sliding-window sums in float32 instead of float16 and "
                             "report autolung's largest probability difference to that")
    parser.add_argument("--tta", choices=("on", "off", "both"), default="both")
    parser.add_argument("--bf16", choices=("auto", "off"), default="auto",
                        help="auto: also time autolung with --precision auto where the CPU has native bfloat16")
    args = parser.parse_args()
    if not (NNUNET_VENV / "bin" / "nnUNetv2_predict").is_file():
        raise SystemExit(f"no nnU-Net reference environment at {NNUNET_VENV}; run ../shared/reference/setup_nnunet.sh")
    args.work.mkdir(parents=True, exist_ok=True)
    env = _env(args.work, args.threads)
    _install_trainer()
    _prepare_raw(args.work, env)
    settings = {"on": [True], "off": [False], "both": [False, True]}[args.tta]
    targets = []
    for index in args.kinds:
        _train(args.work, KINDS[index], env)
        targets.append(kind_target(args.work, KINDS[index], args.cases))
    targets += [trained_target(args.work, model, images, labels, args.cases) for model, images, labels in args.trained]
    rows = []
    for target in targets:
        for mirror in settings:
            row = compare(args.work, target, mirror, args.threads, bf16=args.bf16 == "auto" and native_bfloat16(),
                          float32_sums=args.float32_sums)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'kind':34s} {'TTA':4s} {'fg agree':>9s} {'max |dp|':>9s} {'interior':>9s} {'>1e-3':>8s} "
          f"{'Dice nnU':>9s} {'Dice al':>8s} {'nnU-Net s':>9s} {'autolung s':>10s} {'ratio':>6s}")
    for row in rows:
        print(f"{row['kind']:34s} {'on' if row['tta'] else 'off':4s} {row['foreground_agreement']:9.5f} "
              f"({row['foreground_voxels']} fg voxels) "
              f"{row['max_probability_difference']:9.2e} {row['max_probability_difference_interior']:9.2e} "
              f"{row['share_over_1e-3']:8.2e} {row['dice_nnunet']:9.4f} {row['dice_autolung']:8.4f} "
              f"{row['nnunet_s']:9.1f} {row['autolung_s']:10.1f} {row['time_ratio']:6.2f}")
        if "max_probability_difference_float32_sums" in row:
            print(f"{'':34s} {'':4s} max |dp| to nnU-Net with float32 sums: "
                  f"{row['max_probability_difference_float32_sums']:.2e}")
        if "autolung_auto_s" in row:
            print(f"{'':34s} {'':4s} precision auto (bfloat16): fg agree {row['foreground_agreement_auto']:.5f}, "
                  f"Dice {row['dice_autolung_auto']:.4f} (nnU-Net {row['dice_nnunet']:.4f}), "
                  f"{row['autolung_auto_s']:.1f} s, ratio {row['time_ratio_auto']:.2f}")


if __name__ == "__main__":
    main()
