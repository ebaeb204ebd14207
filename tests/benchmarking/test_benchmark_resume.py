"""Resume logic: steps recorded in state.json are skipped; a failed step is retried next time."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from autolung.benchmarking import runner, steps
from autolung.benchmarking.settings import BenchmarkSettings
from autolung.benchmarking.state import BenchmarkState
from autolung.errors import AutolungError, InvalidInputError
from autolung.paths import DataRoot

from .helpers import case


@pytest.fixture
def fake_steps(monkeypatch):
    """Replace every step by a counter; ``fail`` names (dataset, step) pairs that raise."""
    calls: Counter = Counter()
    fail: set = set()

    def recorder(step):
        def run(job, *args):
            calls[(job.name, step, *(tuple(a) if isinstance(a, list) else a for a in args))] += 1
            if (job.name, step) in fail:
                raise AutolungError(f"{step} broke", path=job.folder)
            return {"ran": step}
        return run

    for name in ("verify_step", "plan_step", "preprocess_step", "train_step", "gather_cv_step", "evaluate_step",
                 "best_configuration_step"):
        monkeypatch.setattr(steps, name, recorder(name))
    monkeypatch.setattr(steps, "choose_configurations", lambda job: ["3d_fullres"])
    monkeypatch.setattr(steps, "fold_list", lambda job, configuration: [0, 1])
    monkeypatch.setattr(steps, "fold_has_predictions", lambda job, configuration, fold: True)
    monkeypatch.setattr(steps, "make_job", lambda dataset, root, settings, report: steps.DatasetJob(
        dataset, Path("/raw") / dataset, root, settings, report))

    def collect(job, configurations, folds, best, failed):
        cases = [case("x", {"1": (0.5, 1.0, 0.5)})] if not failed else []
        return {"dataset": job.name, "labels": {"1": "lung"}, "failed": failed, "best": best,
                "configurations": {c: {"plan": {}, "folds": {}, "cases": cases, "lesions": {}}
                                   for c in configurations}}

    monkeypatch.setattr(runner, "collect_result", collect)
    return calls, fail


def _run(tmp_path, datasets=("A", "B")):
    settings = BenchmarkSettings(datasets=list(datasets))
    return runner.run_benchmark(settings, DataRoot(tmp_path / "root"), tmp_path / "report")


def test_second_run_skips_every_finished_step(tmp_path, fake_steps):
    calls, _ = fake_steps
    outcome = _run(tmp_path)
    assert not outcome.failures
    assert calls[("A", "train_step", "3d_fullres", 0)] == 1 and calls[("A", "train_step", "3d_fullres", 1)] == 1
    assert sum(calls.values()) == 2 * 8  # verify, plan, preprocess, 2 folds, cv, best, evaluate (x2 datasets)
    state = json.loads((tmp_path / "report" / "state.json").read_text())
    assert set(state["datasets"]["B"]["steps"]) == {
        "verify", "plan", "preprocess/3d_fullres", "train/3d_fullres/fold_0", "train/3d_fullres/fold_1",
        "cv/3d_fullres/folds_0-1", "best/3d_fullres/folds_0-1", "evaluate/3d_fullres/folds_0-1"}
    calls.clear()
    outcome = _run(tmp_path)
    assert sum(calls.values()) == 0 and not outcome.failures
    assert outcome.paths["csv"].read_text().count("\n") == 3  # header + one class per dataset


def test_failed_step_is_recorded_others_continue_and_rerun_retries_it(tmp_path, fake_steps):
    calls, fail = fake_steps
    fail.add(("A", "train_step"))
    outcome = _run(tmp_path)
    assert outcome.failures["A"]["step"] == "train/3d_fullres/fold_0"
    assert "train_step broke" in outcome.failures["A"]["message"]
    assert calls[("B", "evaluate_step", "3d_fullres")] == 1  # B still ran to the end
    state = BenchmarkState(tmp_path / "report" / "state.json")
    assert state.failure("A")["step"] == "train/3d_fullres/fold_0"
    assert not state.is_done("A", "train/3d_fullres/fold_0") and state.is_done("A", "preprocess/3d_fullres")
    assert "train/3d_fullres/fold_0" in outcome.paths["md"].read_text()

    fail.clear()
    calls.clear()
    outcome = _run(tmp_path)
    assert not outcome.failures and state.__class__(state.path).failure("A") is None
    assert calls[("A", "verify_step")] == 0 and calls[("A", "preprocess_step", "3d_fullres")] == 0
    assert calls[("A", "train_step", "3d_fullres", 0)] == 1 and calls[("A", "evaluate_step", "3d_fullres")] == 1
    assert not any(key[0] == "B" for key in calls)


def test_fold_whose_predictions_vanished_is_retrained_and_cv_redone(tmp_path, fake_steps, monkeypatch):
    calls, _ = fake_steps
    _run(tmp_path, datasets=("A",))
    calls.clear()
    monkeypatch.setattr(steps, "fold_has_predictions", lambda job, configuration, fold: fold != 1)
    _run(tmp_path, datasets=("A",))
    assert calls[("A", "train_step", "3d_fullres", 1)] == 1 and calls[("A", "train_step", "3d_fullres", 0)] == 0
    assert calls[("A", "gather_cv_step", "3d_fullres", (0, 1))] == 1
    assert calls[("A", "evaluate_step", "3d_fullres")] == 1 and calls[("A", "preprocess_step", "3d_fullres")] == 0


def test_dataset_outside_the_root_is_linked_under_raw(tmp_path):
    from conftest import write_tiny_msd

    elsewhere = write_tiny_msd(tmp_path / "elsewhere" / "Tiny_CT", num_cases=2, shape=(4, 8, 8))
    root = DataRoot(tmp_path / "root")
    job = steps.make_job(str(elsewhere), root, BenchmarkSettings(["x"]), tmp_path / "report")
    assert job.name == "Tiny_CT" and (root.raw / "Tiny_CT").resolve() == elsewhere.resolve()
    assert steps.make_job(str(elsewhere), root, BenchmarkSettings(["x"]), tmp_path / "report").name == "Tiny_CT"
    other = write_tiny_msd(tmp_path / "other" / "Tiny_CT", num_cases=2, shape=(4, 8, 8))
    with pytest.raises(InvalidInputError, match="different dataset of the same name"):
        steps.make_job(str(other), root, BenchmarkSettings(["x"]), tmp_path / "report")


def test_run_step_records_info_and_returns_it_when_skipped(tmp_path):
    state = BenchmarkState(tmp_path / "state.json")
    counter = []
    step = lambda value: counter.append(value) or {"value": value}  # noqa: E731
    assert runner.run_step(state, "D", "plan", step, 1)["value"] == 1
    assert runner.run_step(state, "D", "plan", step, 2)["value"] == 1  # recorded, not run again
    assert counter == [1]
    assert json.loads((tmp_path / "state.json").read_text())["datasets"]["D"]["steps"]["plan"]["value"] == 1


def test_corrupt_state_file_is_a_clear_error(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="cannot read benchmark state"):
        BenchmarkState(tmp_path / "state.json")


def test_train_step_skips_a_fold_trained_and_validated_with_the_same_plans(tmp_path, monkeypatch):
    import autolung.training.run as training_run

    trained = []
    monkeypatch.setattr(training_run, "train_fold", lambda *args, **kwargs: trained.append(kwargs or args))
    job = steps.DatasetJob("D", tmp_path, DataRoot(tmp_path / "root"), BenchmarkSettings(["D"]), tmp_path / "r")
    monkeypatch.setattr(steps.DatasetJob, "plans", lambda self: type("P", (), {"digest": lambda s: "abc"})())
    fold = job.fold_folder("3d_fullres", 0)
    (fold / "validation").mkdir(parents=True)
    (fold / "validation" / "case_0.nii.gz").write_bytes(b"x")
    (fold / "checkpoint_final.pt").write_bytes(b"x")
    (fold / "training_info.json").write_text(json.dumps({"plans_digest": "abc"}))
    assert steps.train_step(job, "3d_fullres", 0)["reused"] is True and trained == []
    (fold / "training_info.json").write_text(json.dumps({"plans_digest": "older"}))
    assert steps.train_step(job, "3d_fullres", 0)["reused"] is False and len(trained) == 1
