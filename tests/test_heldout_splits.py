"""The held-out protocol's split files (benchmarks/splits/*.json): patient-disjoint, complete, reproducible."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from conftest import shared_dataset

REPO = Path(__file__).resolve().parents[1]
SPLITS = REPO / "benchmarks" / "splits"
SETS = ["FindingLungs2D", "COVID_Infection2D", "MSDLungTumourPatches2D", "CXR_Lungs2D", "Task04_Hippocampus",
        "LIDCNodules3D", "NSCLC_LungCT"]


def _generator():
    spec = importlib.util.spec_from_file_location("make_splits", REPO / "benchmarks" / "make_splits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(name: str) -> dict:
    return json.loads((SPLITS / f"{name}.json").read_text())


@pytest.mark.parametrize("name", SETS)
def test_split_file_is_patient_disjoint(name: str) -> None:
    record = _record(name)
    pattern = re.compile(record["patient_pattern"])
    for fold in record["folds"]:
        train = {pattern.match(c).group(1) for c in fold["train"]}
        test = {pattern.match(c).group(1) for c in fold["test"]}
        assert fold["test"] and fold["train"]
        assert not train & test, f"{name}: patients on both sides: {sorted(train & test)[:5]}"
        assert not set(fold["train"]) & set(fold["test"])


def test_lidc_patients_with_several_nodules_stay_on_one_side() -> None:
    fold = _record("LIDCNodules3D")["folds"][0]
    test_patients = {c.rsplit("_", 1)[0] for c in fold["test"]}
    train_patients = {c.rsplit("_", 1)[0] for c in fold["train"]}
    multi = [p for p in test_patients if sum(c.startswith(p + "_") for c in fold["test"]) > 1]
    assert multi, "the LIDC test side should hold patients with several nodules"
    assert not test_patients & train_patients


def test_leave_one_scan_out_covers_each_scan_once() -> None:
    record = _record("NSCLC_LungCT")
    tested = [case for fold in record["folds"] for case in fold["test"]]
    assert sorted(tested) == sorted(set(tested)) and len(tested) == record["num_cases"] == len(record["folds"])


@pytest.mark.parametrize("name", SETS)
def test_split_covers_every_case_and_matches_the_generator(name: str) -> None:
    folder = shared_dataset(name)
    generator = _generator()
    cases = generator.case_ids(folder)
    record = _record(name)
    for fold in record["folds"]:
        assert sorted(fold["train"] + fold["test"]) == sorted(cases)
    if name not in generator.LEAVE_ONE_OUT:
        fraction = len(record["folds"][0]["test"]) / len(cases)
        assert 0.15 <= fraction <= 0.3
    assert generator.make_split(name, folder) == record


def test_split_by_patient_is_deterministic_and_disjoint() -> None:
    generator = _generator()
    cases = [f"lidc_{p:04d}_{n:02d}" for p in range(20) for n in range(1 + p % 3)]
    first = generator.split_by_patient(cases, r"^(lidc_\d+)_\d+$")
    assert first == generator.split_by_patient(list(reversed(cases)), r"^(lidc_\d+)_\d+$")
    test_patients = {c[:9] for c in first["test"]}
    assert len(test_patients) == 4  # 20 % of 20 patients
    assert not test_patients & {c[:9] for c in first["train"]}


def _time_to_accuracy():
    spec = importlib.util.spec_from_file_location("time_to_accuracy", REPO / "benchmarks" / "time_to_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_validation_fold_inside_the_train_part_is_patient_disjoint() -> None:
    tta = _time_to_accuracy()
    train = _record("LIDCNodules3D")["folds"][0]["train"]
    inner = tta.validation_split(train, r"^(lidc_\d+)_\d+$")
    assert sorted(inner["train"] + inner["val"]) == sorted(train)
    assert not {c.rsplit("_", 1)[0] for c in inner["val"]} & {c.rsplit("_", 1)[0] for c in inner["train"]}
    assert tta.validation_split(["a", "b"], r"^(.+)$") == {"train": ["a", "b"], "val": ["a"]}


def test_results_table_and_plot(tmp_path: Path) -> None:
    tta = _time_to_accuracy()
    record = {"set": "S", "fold": 0, "budget_s": 300.0, "tool": "autolung:auto", "variant": "defaults",
              "iterations": 250, "train_loop_s": 301.0, "dice": {"tumour": 0.61, "mean": 0.61},
              "plan": {"patch": [48, 48], "batch": 5, "features": [16, 128]}, "machine": {"load_before": 5.0},
              "load_after": 6.0}
    nnunet = dict(record, tool="nnunet", dice={"tumour": None, "mean": None})
    rows = tta.report_rows([record, nnunet])
    assert "| S | 0 | 5 min | autolung:auto | defaults | 0.610 | tumour 0.610 | 250 |" in rows[2]
    assert "| ?: [48, 48], 5, 16..128 |" in rows[2]  # a record without its configuration
    assert "| 2d: [48, 48], 5, 16..128 |" in tta.report_rows([dict(record, configuration="2d")])[2]
    assert "| nnunet | defaults | - | tumour - |" in rows[3]
    fixed = dict(record, budget_s=None, fixed_iterations=300, variant="ce")
    assert "| S | 0 | 300 iterations | autolung:auto | ce |" in tta.report_rows([fixed])[2]
    tta.draw_plot([record, dict(record, budget_s=600.0, dice={"tumour": 0.7, "mean": 0.7})], tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_paired_runs_are_matched_by_set_budget_and_start() -> None:
    tta = _time_to_accuracy()
    base = {"set": "S", "fold": 0, "budget_s": 300.0, "variant": "defaults", "iterations": 100,
            "train_loop_s": 300.0, "started": "2026-11-30T13:00:05+00:00", "load_after": 1.0}
    ours = dict(base, tool="autolung:auto", configuration="2d", dice={"a": 0.5, "b": 0.9, "mean": 0.7},
                machine={"pinned_cores": [0], "cores": 2, "autolung_commit": "abc1234"})
    theirs = dict(base, tool="nnunet", iterations=40, dice={"a": 0.0, "b": 0.8, "mean": 0.4},
                  machine={"pinned_cores": [1], "cores": 2})
    unpaired = dict(ours, started="2026-11-30T15:00:00+00:00")
    shared = dict(theirs, machine={"cores": 2})  # an unpinned run never pairs
    assert tta.paired_runs([ours, theirs, unpaired, shared]) == [(ours, theirs)]
    row = tta.pair_rows([ours, theirs])[2]
    assert row == ("| S | 0 | 5 min | 2026-11-30 13:00, abc1234 | auto, 2d | 0.700 | 0.400 | +0.300 | 100 / 40 | "
                   "a: 0.500 / 0.000 |")
    # the latest pair of a set, fold and budget stands for the current defaults
    later = dict(ours, started="2026-12-01T09:00:00+00:00", dice={"a": 0.6, "b": 0.9, "mean": 0.75})
    later_theirs = dict(theirs, started="2026-12-01T09:00:04+00:00", dice={"a": 0.6, "b": 0.9, "mean": 0.8})
    rows = tta.latest_pair_rows([ours, theirs, later, later_theirs])
    assert rows[2:] == ["| S | 0 | 5 min | 0.750 | 0.800 | -0.050 |",
                        "| **mean of 1** | | | | | **-0.050**, lowest -0.050 |"]
    # The plot draws the latest paired run per budget: a later commit's defaults supersede.
    later = dict(ours, started="2026-11-30T16:00:00+00:00", dice={"a": 0.9, "b": 0.9, "mean": 0.9})
    assert tta.plot_lines([ours, theirs, later, shared], "S") == {"autolung:auto": [(5.0, 0.9)],
                                                                  "nnunet": [(5.0, 0.4)]}
    assert "core 0, paired" in tta.report_rows([ours])[2] and "2 (shared)" in tta.report_rows([shared])[2]


def test_a_resumed_nnunet_run_keeps_its_start_and_machine_and_still_pairs(tmp_path: Path, monkeypatch) -> None:
    """A paired run whose nnU-Net prediction was stopped is resumed later: only prediction and scoring
    run again, and the record keeps the training's start and pinned core, so it pairs as before."""
    import argparse

    tta = _time_to_accuracy()
    calls = []

    def fake_nnunet(*arguments):
        calls.append(arguments)
        return {"iterations": 31, "train_loop_s": 313.7, "dice": {"nodule": 0.5, "mean": 0.5}}

    monkeypatch.setattr(tta, "run_nnunet", fake_nnunet)
    args = argparse.Namespace(set="LIDCNodules3D", budget="5m", fold=0, iterations=None, variant="defaults",
                              work=tmp_path, results=tmp_path / "results.json", train_arg=[], plan_arg=[],
                              configuration=None, nnunet_venv=tmp_path, nnunet_predictor="autolung",
                              reuse_nnunet_training=True, nnunet_predict_mode="fast")
    work = tmp_path / "LIDCNodules3D_f0_300s_nnunet_defaults"
    work.mkdir()
    started = "2026-12-01T04:21:24+00:00"
    (work / tta.RUN_RECORD).write_text(json.dumps({"started": started,
                                                   "machine": {"pinned_cores": [1], "cores": 2}}))
    with pytest.raises(SystemExit, match="checkpoint_final.pth is missing"):
        tta.run_tool(args, "nnunet")  # nothing finished to reuse: refused, not retrained silently
    checkpoint = tta.nnunet_model_folder(work, "LIDCNodules3D", "3d_fullres") / "fold_0" / "checkpoint_final.pth"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    tta.run_tool(args, "nnunet")
    record = json.loads(args.results.read_text())[0]
    assert record["started"] == started and record["machine"]["pinned_cores"] == [1]
    assert record["machine"]["resumed"] > started
    assert calls[0][-3:] == ("autolung", True, "fast")  # predicted by autolung in fast mode, the training reused
    ours = dict(record, tool="autolung:auto", machine={"pinned_cores": [0], "cores": 2})
    assert tta.paired_runs([ours, record]) == [(ours, record)]
    fresh = tmp_path / "fresh"
    tta.run_tool(argparse.Namespace(**{**vars(args), "reuse_nnunet_training": False, "work": fresh}), "nnunet")
    assert calls[1][-2] is False and json.loads((fresh / work.name / tta.RUN_RECORD).read_text())["started"] > started
    tta._clear_work(work)  # a new training empties the folder but keeps the run's start record
    assert [entry.name for entry in work.iterdir()] == [tta.RUN_RECORD]
