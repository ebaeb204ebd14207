"""The ignore label (nnU-Net's sparse annotation) through the real CLI on a real set.

A copy of FindingLungs2D keeps its labels only in a band of rows; every other voxel is marked
``ignore``. Training must not learn the unannotated area as a class, never predict it, and the
evaluation must score exactly the annotated voxels of the full reference.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from typer.testing import CliRunner

from conftest import shared_dataset

CASES = [f"lungs_{i:03d}" for i in range(8)]
IGNORE = 2
ANNOTATED_ROWS = slice(20, 44)  # rows of the 64x64 slices that keep their annotation


def _cli(*args: str):
    from autolung_cli.app import _register_commands, app

    _register_commands()
    return CliRunner().invoke(app, list(args))


def _copy(source: Path, target: Path, sparse: bool, ignore_value: int = IGNORE) -> Path:
    (target / "imagesTr").mkdir(parents=True)
    (target / "labelsTr").mkdir()
    for case in CASES:
        shutil.copyfile(source / "imagesTr" / f"{case}_0000.png", target / "imagesTr" / f"{case}_0000.png")
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(source / "labelsTr" / f"{case}.png")))
        if sparse:
            sparse_label = np.full_like(label, ignore_value)
            sparse_label[ANNOTATED_ROWS] = label[ANNOTATED_ROWS]
            label = sparse_label
        sitk.WriteImage(sitk.GetImageFromArray(label.astype(np.uint8)), str(target / "labelsTr" / f"{case}.png"))
    labels = {"background": 0, "lung": 1, **({"ignore": ignore_value} if sparse else {})}
    (target / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": labels, "numTraining": len(CASES), "file_ending": ".png"}))
    return target


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.mark.slow
def test_sparse_copy_trains_without_the_ignore_class_and_scores_only_annotated_voxels(tmp_path):
    source = shared_dataset("FindingLungs2D")
    full = _copy(source, tmp_path / "raw" / "Lungs_full", sparse=False)
    sparse = _copy(source, tmp_path / "raw" / "Lungs_sparse", sparse=True)
    root = tmp_path / "root"
    assert _cli("verify", "-d", str(sparse), "--root", str(root)).exit_code == 0
    runs = {}
    for dataset in (full, sparse):
        result = _cli("plan_and_preprocess", "-d", str(dataset), "-c", "2d", "-np", "1", "--planner", "cpu",
                      "--root", str(root), "--no-progress")
        assert result.exit_code == 0, result.output
        result = _cli("train", "-d", str(dataset), "-c", "2d", "-f", "0", "--planner", "cpu", "--epochs", "2",
                      "--iters-per-epoch", "3", "--val-iters", "1", "--device", "cpu", "--num-workers", "0",
                      "--root", str(root))
        assert result.exit_code == 0, result.output
        runs[dataset.name] = root / "results" / dataset.name / "2d__cpu" / "fold_0"

    plans = json.loads((root / "preprocessed" / "Lungs_sparse" / "plans_cpu.json").read_text())
    assert plans["region_mapping"] == {"regions": [[1]], "paint_labels": [1], "ignore_label": IGNORE}
    info = json.loads((runs["Lungs_sparse"] / "training_info.json").read_text())
    assert info["out_channels"] == 1  # the unannotated area is no class of its own
    log = [json.loads(line) for line in (runs["Lungs_sparse"] / "training_log.jsonl").read_text().splitlines()]
    assert len(log[-1]["pseudo_dice"]) == 1 and np.isfinite(log[-1]["train_loss"])

    validation = runs["Lungs_sparse"] / "validation"
    summary = json.loads((validation / "summary.json").read_text())
    assert summary["labels"] == ["1"] and summary["ignore_label"] == IGNORE
    annotated = np.zeros((64, 64), dtype=bool)
    annotated[ANNOTATED_ROWS] = True
    for case in summary["cases"]:
        prediction = _read(validation / f"{case['case_id']}.png").reshape(64, 64)
        assert IGNORE not in np.unique(prediction)  # never predicted
        truth = _read(full / "labelsTr" / f"{case['case_id']}.png").reshape(64, 64) == 1
        found = prediction == 1
        counts = case["metrics"]["1"]
        assert counts["tp"] == int((found & truth & annotated).sum())
        assert counts["fp"] == int((found & ~truth & annotated).sum())
        assert counts["fn"] == int((~found & truth & annotated).sum())

    # The fully annotated run's predictions, scored against the sparse references, count the
    # same annotated voxels: `evaluate --ignore-label` is the full reference seen through the band.
    full_validation = runs["Lungs_full"] / "validation"
    full_summary = json.loads((full_validation / "summary.json").read_text())
    out = tmp_path / "sparse_eval.json"
    result = _cli("evaluate", "-r", str(sparse / "labelsTr"), "-p", str(full_validation), "-o", str(out),
                  "--ignore-label", str(IGNORE), "--allow-missing")
    assert result.exit_code == 0, result.output
    sparse_eval = json.loads(out.read_text())
    assert sparse_eval["ignore_label"] == IGNORE
    assert sorted(sparse_eval["missing_predictions"]) == sorted(set(CASES) - {c["case_id"] for c in full_summary["cases"]})
    for case in sparse_eval["cases"]:
        prediction = _read(full_validation / f"{case['case_id']}.png").reshape(64, 64) == 1
        truth = _read(full / "labelsTr" / f"{case['case_id']}.png").reshape(64, 64) == 1
        assert case["metrics"]["1"]["tp"] == int((prediction & truth & annotated).sum())
        assert case["metrics"]["1"]["fp"] == int((prediction & ~truth & annotated).sum())


def test_verify_refuses_an_ignore_label_that_is_not_the_highest(tmp_path):
    source = shared_dataset("FindingLungs2D")
    dataset = _copy(source, tmp_path / "Lungs_bad", sparse=True)
    payload = json.loads((dataset / "dataset.json").read_text())
    payload["labels"] = {"background": 0, "ignore": 1, "lung": 2}
    (dataset / "dataset.json").write_text(json.dumps(payload))
    result = _cli("verify", "-d", str(dataset), "--root", str(tmp_path / "root"))
    assert result.exit_code == 1
    assert "dataset.json" in result.output and "'ignore' label (1) must be the highest label value" in result.output


def test_ignore_label_works_with_regions(tmp_path):
    from autolung.dataset.layout import load_dataset

    source = shared_dataset("FindingLungs2D")
    dataset = _copy(source, tmp_path / "Lungs_regions", sparse=True, ignore_value=3)
    payload = json.loads((dataset / "dataset.json").read_text())
    payload["labels"] = {"background": 0, "lung_or_more": [1, 2], "more": 2, "ignore": 3}
    payload["regions_class_order"] = [1, 2]
    (dataset / "dataset.json").write_text(json.dumps(payload))
    spec = load_dataset(dataset)
    assert spec.region_mapping.regions == ((1, 2), (2,)) and spec.region_mapping.ignore_label == 3
    assert 3 in spec.declared_label_values and spec.region_mapping.num_channels == 2


@pytest.mark.parametrize("loss", ["bce_dice", "ce_dice"])
def test_loss_and_pseudo_dice_ignore_unannotated_voxels(loss):
    from autolung.labels import RegionMapping
    from autolung.training.data.targets import make_targets
    from autolung.training.loss import build_loss, output_channels
    from autolung.training.trainer import pseudo_dice_counts

    regions = RegionMapping(((1,),), (1,), ignore_label=2)
    seg = np.zeros((1, 1, 1, 8, 8), dtype=np.int16)
    seg[..., 2:4, 2:4] = 1
    seg[..., :, 5:] = IGNORE
    targets = torch.from_numpy(make_targets(seg, regions, loss))
    torch.manual_seed(0)
    logits = torch.randn(1, output_channels(loss, regions), 1, 8, 8, requires_grad=True)
    criterion = build_loss(loss, has_ignore=True)
    value = criterion(logits, targets)
    value.backward()
    assert torch.all(logits.grad[..., 5:] == 0) and torch.any(logits.grad[..., :5] != 0)
    changed = logits.detach().clone()
    changed[..., 5:] = 50.0  # anything at all where nobody annotated
    assert float(criterion(changed, targets)) == pytest.approx(float(value.detach()))
    tp, fp, fn = pseudo_dice_counts(changed, targets, loss, has_ignore=True)
    reference = pseudo_dice_counts(logits.detach(), targets, loss, has_ignore=True)
    assert [t.tolist() for t in (tp, fp, fn)] == [t.tolist() for t in reference]
