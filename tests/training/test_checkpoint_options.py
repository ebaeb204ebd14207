"""train --disable-checkpointing / --val-only / --val-best and predict --checkpoint, through the CLI."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from autolung.paths import DataRoot

from cli_main import run_main
from conftest import write_tiny_msd

TRAIN = ["-c", "3d_fullres", "-f", "0", "--epochs", "2", "--iters-per-epoch", "2", "--val-iters", "1",
         "--device", "cpu", "--num-workers", "0"]


@pytest.fixture
def tiny(data_root: DataRoot):
    from autolung.fingerprint.run import fingerprint_dataset
    from autolung.planning.plans import Plans
    from autolung.planning.run import plan_dataset
    from autolung.preprocessing.run import preprocess_dataset

    dataset = write_tiny_msd(data_root.raw / "Tiny_CT", num_cases=5)
    fingerprint_dataset(dataset, data_root, 1, False)
    plan_dataset(dataset, data_root, "default", 8.0)
    plans = Plans.load(data_root.plans_file("Tiny_CT"))
    arch = plans.configurations["3d_fullres"].architecture
    arch.features_per_stage = [4 * 2 ** min(i, 2) for i in range(arch.num_stages)]  # tiny network
    plans.save(data_root.plans_file("Tiny_CT"))
    preprocess_dataset(dataset, data_root, ["3d_fullres"], 1, progress=False)
    return data_root


def _record(folder):
    return json.loads((folder / "autolung_predictions.json").read_text())


@pytest.mark.slow
def test_checkpoint_and_validation_options(tiny, tmp_path, capsys, monkeypatch):
    root = ["--root", tiny.root]
    fold = tiny.training_output("Tiny_CT", "3d_fullres") / "fold_0"

    code, output = run_main(["train", "-d", "Tiny_CT", *TRAIN, "--disable-checkpointing", "--no-final-validation",
                             *root], capsys, monkeypatch)
    assert code == 0, output
    assert (fold / "training_log.jsonl").is_file() and not list(fold.glob("checkpoint_*.pt"))  # nothing written
    code, output = run_main(["train", "-d", "Tiny_CT", *TRAIN, "--val-only", *root], capsys, monkeypatch)
    assert code == 1 and "no checkpoint_final.pt: train this fold first" in output
    code, output = run_main(["train", "-d", "Tiny_CT", *TRAIN, "--val-best", "--disable-checkpointing", *root],
                            capsys, monkeypatch)
    assert code == 1 and "checkpointing is off" in output

    code, output = run_main(["train", "-d", "Tiny_CT", *TRAIN, "--val-best", "--weight-ema", "0.9", *root], capsys,
                            monkeypatch)
    assert code == 0, output
    assert _record(fold / "validation")["models"][0]["checkpoint"] == "best"
    checkpoints = {p.name: p.stat().st_mtime_ns for p in fold.glob("checkpoint_*.pt")}
    assert set(checkpoints) == {"checkpoint_final.pt", "checkpoint_best.pt", "checkpoint_latest.pt",
                                "checkpoint_weight_ema.pt"}
    final = torch.load(fold / "checkpoint_final.pt", weights_only=True)
    average = torch.load(fold / "checkpoint_weight_ema.pt", weights_only=True)
    assert average["weight_average_updates"] == 4 and average["epoch"] == final["epoch"]
    assert final["network_weights"].keys() == average["network_weights"].keys()
    assert any(not torch.equal(final["network_weights"][k], average["network_weights"][k])
               for k in final["network_weights"])
    log_lines = (fold / "training_log.jsonl").read_text()

    for case in (fold / "validation").iterdir():
        case.unlink()
    code, output = run_main(["train", "-d", "Tiny_CT", *TRAIN, "--val-only", *root], capsys, monkeypatch)
    assert code == 0, output
    assert "validated 3d_fullres fold 0" in output
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    assert summary["num_cases"] == 1 and (fold / "validation" / f"{summary['cases'][0]['case_id']}.npz").is_file()
    assert _record(fold / "validation")["models"][0]["checkpoint"] == "final"
    assert {p.name: p.stat().st_mtime_ns for p in fold.glob("checkpoint_*.pt")} == checkpoints  # nothing trained
    assert (fold / "training_log.jsonl").read_text() == log_lines

    images = tmp_path / "one_case"
    images.mkdir()
    first = sorted((tiny.raw / "Tiny_CT" / "imagesTr").iterdir())[0]
    shutil.copyfile(first, images / first.name)
    predict = ["predict", "-i", images, "-d", "Tiny_CT", "-c", "3d_fullres", "-f", "0", "--disable-tta",
               "--no-progress", *root]
    for name in ("best", "latest", "weight_ema"):
        code, output = run_main([*predict, "-o", tmp_path / name, "--checkpoint", name], capsys, monkeypatch)
        assert code == 0, output
        assert _record(tmp_path / name)["models"][0]["checkpoint"] == f"checkpoint_{name}.pt"
    code, output = run_main([*predict, "-o", tmp_path / "bad", "--checkpoint", "newest"], capsys, monkeypatch)
    assert code == 1 and "checkpoint must be one of final, best, latest, weight_ema, got 'newest'" in output
