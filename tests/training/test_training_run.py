from __future__ import annotations

import json
import signal

import pytest
import torch
from typer.testing import CliRunner

from autolung.paths import DataRoot
from autolung.training.data.workers import DataWorkerError
from autolung.training.run import train_fold

from .helpers import DATASET, fast_options, tiny_configuration, tiny_plans, write_tiny_preprocessed


@pytest.fixture
def root(tmp_path) -> DataRoot:
    root = DataRoot(tmp_path / "root")
    write_tiny_preprocessed(root)
    return root


def _records(folder):
    return [json.loads(line) for line in (folder / "training_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_cli_training_lowers_loss_and_writes_a_complete_run_folder(root):
    from autolung_cli.app import _register_commands, app

    _register_commands()
    result = CliRunner().invoke(app, [
        "train", "-d", DATASET, "-c", "3d_fullres", "-f", "0", "--root", str(root.root), "--epochs", "5",
        "--iters-per-epoch", "6", "--val-iters", "1", "--device", "cpu", "--num-workers", "1",
        "--no-final-validation"])
    assert result.exit_code == 0, result.output
    folder = root.training_output(DATASET, "3d_fullres") / "fold_0"
    records = _records(folder)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    assert records[-1]["train_loss"] < 0.95 * records[0]["train_loss"]
    assert 0 <= records[0]["data_wait_fraction"] <= 1 and len(records[0]["pseudo_dice"]) == 2
    assert (folder / "progress.png").stat().st_size > 0
    assert (folder.parent / "plans.json").read_text() == root.plans_file(DATASET).read_text()
    info = json.loads((folder / "training_info.json").read_text())
    assert {"configuration", "planner", "fold", "plans_digest", "in_channels", "out_channels",
            "autolung_version"} <= set(info)
    # two mutually exclusive labels: the default loss "auto" trains softmax classes (background + 2)
    assert info["out_channels"] == 3 and info["in_channels"] == 1
    assert info["loss"] == "ce_dice" and info["output_kind"] == "softmax_classes"
    for name in ("checkpoint_latest.pt", "checkpoint_best.pt", "checkpoint_final.pt"):
        payload = torch.load(folder / name, weights_only=True)
        assert payload["format"] == "autolung-checkpoint" and payload["plans_digest"] == info["plans_digest"]
        assert payload["configuration"] == "3d_fullres" and "network_weights" in payload
    assert torch.load(folder / "checkpoint_final.pt", weights_only=True)["epoch"] == 5
    assert not list(folder.glob(".partial-*")) and not (folder / ".autolung.lock").exists()


@pytest.mark.slow
def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch):
    from autolung.training.trainer import Trainer

    options = dict(epochs=4, iters_per_epoch=3, deterministic=True, plot_every=100)
    straight, split = DataRoot(tmp_path / "a"), DataRoot(tmp_path / "b")
    for root in (straight, split):
        write_tiny_preprocessed(root, num_cases=4)
    train_fold(straight, DATASET, "3d_fullres", 0, fast_options(**options))

    original = Trainer._end_epoch

    def killed_after_epoch_2(self, *args):
        original(self, *args)
        if self.state.epoch == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C right after epoch 2

    monkeypatch.setattr(Trainer, "_end_epoch", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_fold(split, DATASET, "3d_fullres", 0, fast_options(**options))
    monkeypatch.setattr(Trainer, "_end_epoch", original)
    folder = train_fold(split, DATASET, "3d_fullres", 0, fast_options(**options, resume=True))
    a = torch.load(straight.training_output(DATASET, "3d_fullres") / "fold_0" / "checkpoint_final.pt",
                   weights_only=True)
    b = torch.load(folder / "checkpoint_final.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 4
    for key, value in a["network_weights"].items():
        assert torch.equal(value, b["network_weights"][key]), key
    keep = ("epoch", "train_loss", "val_loss", "pseudo_dice", "lr", "iterations")
    strip = lambda records: [{k: r[k] for k in keep} for r in records]  # noqa: E731 (times differ)
    assert strip(a["logger_state"]["records"]) == strip(b["logger_state"]["records"]) == strip(_records(folder))


def test_raising_epochs_extends_a_finished_run(root):
    options = dict(iters_per_epoch=1, plot_every=100)
    train_fold(root, DATASET, "3d_fullres", 3, fast_options(epochs=1, **options))
    folder = train_fold(root, DATASET, "3d_fullres", 3, fast_options(epochs=2, resume=True, **options))
    assert [r["epoch"] for r in _records(folder)] == [1, 2]
    again = train_fold(root, DATASET, "3d_fullres", 3, fast_options(epochs=2, resume=True, **options))
    assert [r["epoch"] for r in _records(again)] == [1, 2]  # nothing left to do


def test_time_budget_stops_training_and_decays_lr(root):
    folder = train_fold(root, DATASET, "3d_fullres", 1, fast_options(epochs=10_000, iters_per_epoch=2,
                                                                      time_budget_s=2.0, plot_every=1000))
    state = torch.load(folder / "checkpoint_final.pt", weights_only=True)["trainer_state"]
    assert 1 <= state["epoch"] < 10_000 and state["elapsed_s"] >= 2.0 and state["finished"]
    records = _records(folder)
    assert records[-1]["lr"] < records[0]["lr"] or len(records) == 1


def test_epoch_cut_by_the_budget_validates_only_its_share(root):
    folder = train_fold(root, DATASET, "3d_fullres", 1, fast_options(epochs=10, iters_per_epoch=100_000, val_iters=50,
                                                                      time_budget_s=1.0, plot_every=1000))
    state = torch.load(folder / "checkpoint_final.pt", weights_only=True)["trainer_state"]
    assert state["epoch"] == 1 and state["train_batches"] < 100_000
    assert 1 <= state["val_batches"] <= 1 + 50 * state["train_batches"] // 100_000


@pytest.mark.slow
def test_2d_configuration_with_ce_dice(tmp_path):
    root = DataRoot(tmp_path)
    config = tiny_configuration(dim=2, patch=(16, 16), batch_size=3, name="2d")
    plans = tiny_plans([config])
    write_tiny_preprocessed(root, plans=plans, configuration="2d")
    folder = train_fold(root, DATASET, "2d", "all", fast_options(loss="ce_dice", plot_every=100))
    info = json.loads((folder / "training_info.json").read_text())
    assert folder.name == "fold_all" and info["out_channels"] == 3 and info["loss"] == "ce_dice"
    weights = torch.load(folder / "checkpoint_final.pt", weights_only=True)["network_weights"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_worker_crash_stops_training_with_the_workers_traceback(root):
    (root.splits_file(DATASET)).write_text(json.dumps([{"train": ["case_000", "case_001"], "val": ["case_002"]}]))
    case_folder = root.preprocessed_configuration(DATASET, "3d_fullres")
    (case_folder / "case_001_seg.npy").write_bytes(b"this is not an npy file")
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("training hung")))
    signal.alarm(120)
    try:
        with pytest.raises(DataWorkerError) as info:
            train_fold(root, DATASET, "3d_fullres", 0, fast_options(epochs=3, iters_per_epoch=10, num_workers=2))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    message = str(info.value)
    assert "Traceback (most recent call last)" in message and "cannot read preprocessed arrays" in message
    assert "no longer alive" not in message
    folder = root.training_output(DATASET, "3d_fullres") / "fold_0"
    assert not (folder / ".autolung.lock").exists() and not list(folder.glob(".partial-*"))


def test_continue_refuses_other_plans(root):
    options = fast_options(epochs=1, iters_per_epoch=1, plot_every=100)
    train_fold(root, DATASET, "3d_fullres", 2, options)
    plans = tiny_plans([tiny_configuration(features=(4, 8, 12))])
    plans.save(root.plans_file(DATASET))
    with pytest.raises(Exception, match="different plans"):
        train_fold(root, DATASET, "3d_fullres", 2, fast_options(epochs=2, iters_per_epoch=1, resume=True))


def test_continue_falls_back_when_the_latest_checkpoint_is_corrupt(root, caplog):
    options = dict(iters_per_epoch=1, plot_every=100)
    folder = train_fold(root, DATASET, "3d_fullres", 4, fast_options(epochs=2, **options))
    (folder / "checkpoint_latest.pt").write_bytes(b"bit rot, not a zip archive")
    with caplog.at_level("WARNING"):
        train_fold(root, DATASET, "3d_fullres", 4, fast_options(epochs=3, resume=True, **options))
    assert "checkpoint_latest.pt: cannot load checkpoint" in caplog.text
    assert "falling back to checkpoint_final.pt (epoch 2)" in caplog.text
    assert [r["epoch"] for r in _records(folder)] == [1, 2, 3]

    best_epoch = torch.load(folder / "checkpoint_best.pt", weights_only=True)["epoch"]
    (folder / "checkpoint_latest.pt").write_bytes(b"")
    (folder / "checkpoint_final.pt").unlink()
    caplog.clear()
    with caplog.at_level("WARNING"):
        train_fold(root, DATASET, "3d_fullres", 4, fast_options(epochs=3, resume=True, **options))
    assert f"falling back to checkpoint_best.pt (epoch {best_epoch})" in caplog.text
    assert [r["epoch"] for r in _records(folder)] == [1, 2, 3]
    assert torch.load(folder / "checkpoint_latest.pt", weights_only=True)["epoch"] == 3


def test_continue_with_every_checkpoint_unreadable_is_a_clear_error(root):
    options = dict(iters_per_epoch=1, plot_every=100)
    folder = train_fold(root, DATASET, "3d_fullres", 4, fast_options(epochs=1, **options))
    for name in ("checkpoint_latest.pt", "checkpoint_final.pt", "checkpoint_best.pt"):
        (folder / name).write_bytes(b"junk")
    with pytest.raises(Exception, match="no checkpoint can be loaded .*checkpoint_best.pt"):
        train_fold(root, DATASET, "3d_fullres", 4, fast_options(epochs=2, resume=True, **options))
    assert (folder / "checkpoint_latest.pt").read_bytes() == b"junk"  # nothing overwritten


@pytest.mark.slow
def test_compiled_training_through_the_cli_saves_plain_weights(root):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "autolung_cli", "train", "-d", DATASET, "-c", "3d_fullres", "-f", "0",
               "--root", str(root.root), "--epochs", "1", "--iters-per-epoch", "2", "--val-iters", "1",
               "--device", "cpu", "--num-workers", "0", "--no-final-validation", "--compile"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=repo)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = root.training_output(DATASET, "3d_fullres") / "fold_0"
    weights = torch.load(folder / "checkpoint_final.pt", weights_only=True)["network_weights"]
    assert not any(k.startswith("_orig_mod.") for k in weights)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert _records(folder)[0]["iterations"] == 2

    from autolung.network import build_network

    network = build_network(tiny_configuration().architecture, 1, 3, deep_supervision=True)  # softmax: 1 + 2
    network.load_state_dict(weights)  # strict: the compiled wrapper left no trace in the names
