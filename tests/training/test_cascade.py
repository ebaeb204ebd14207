"""The cascade: 3d_cascade_fullres trained on the 3d_lowres cross-validation predictions and
predicted in two stages, through the CLI on a tiny generated dataset."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from cli_main import run_main
from conftest import write_tiny_msd

# Small networks: the test is about the data flow, not accuracy, and validation runs the
# sliding window with mirroring on every case.
SMALL_FEATURES = [4, 8, 16]
SPLITS = [{"train": ["case_002", "case_003"], "val": ["case_000", "case_001"]},
          {"train": ["case_000", "case_001"], "val": ["case_002", "case_003"]}]


def _plan_with_lowres(root, capsys, monkeypatch):
    dataset = write_tiny_msd(root / "raw" / "Tiny_CT", num_cases=4, shape=(8, 32, 32))
    code, output = run_main(["plan", "-d", dataset, "--planner", "default", "--patch-size", "8", "16", "8",
                             "--root", root],
                            capsys, monkeypatch)
    assert code == 0, output
    plans_file = root / "preprocessed" / "Tiny_CT" / "plans.json"
    plans = json.loads(plans_file.read_text())
    assert {"3d_fullres", "3d_lowres", "3d_cascade_fullres"} <= set(plans["configurations"])
    for configuration in plans["configurations"].values():
        stages = len(configuration["architecture"]["features_per_stage"])
        configuration["architecture"]["features_per_stage"] = SMALL_FEATURES[:stages] + [16] * (stages - 3)
    plans_file.write_text(json.dumps(plans))
    (root / "preprocessed" / "Tiny_CT" / "splits.json").write_text(json.dumps(SPLITS))
    return dataset, plans


@pytest.mark.slow
def test_cascade_trains_on_lowres_predictions_and_predicts_in_two_stages(tmp_path, capsys, monkeypatch):
    root = tmp_path / "root"
    dataset, plans = _plan_with_lowres(root, capsys, monkeypatch)
    cascade = plans["configurations"]["3d_cascade_fullres"]
    full = plans["configurations"]["3d_fullres"]
    assert cascade["previous_stage"] == "3d_lowres" and cascade["data_configuration"] == "3d_fullres"
    assert cascade["spacing"] == full["spacing"] and cascade["patch_size"] == full["patch_size"]

    code, output = run_main(["preprocess", "-d", dataset, "-c", "3d_lowres", "3d_cascade_fullres", "-np", "1",
                             "--no-progress", "--root", root], capsys, monkeypatch)
    assert code == 0, output
    # The cascade reads 3d_fullres's cases: no folder of its own.
    assert (root / "preprocessed" / "Tiny_CT" / "3d_fullres").is_dir()
    assert not (root / "preprocessed" / "Tiny_CT" / "3d_cascade_fullres").exists()

    fast = ["--epochs", "1", "--iters-per-epoch", "2", "--val-iters", "1", "--device", "cpu", "--num-workers", "0",
            "--root", root]
    code, output = run_main(["train", "-d", "Tiny_CT", "-c", "3d_cascade_fullres", "-f", "0", *fast],
                            capsys, monkeypatch)
    assert code == 1
    assert "3d_lowres__default" in output and "train 3d_lowres folds 0, 1" in output, output

    for fold in ("0", "1"):
        code, output = run_main(["train", "-d", "Tiny_CT", "-c", "3d_lowres", "-f", fold, *fast], capsys, monkeypatch)
        assert code == 0, output
    code, output = run_main(["train", "-d", "Tiny_CT", "-c", "3d_cascade_fullres", "-f", "0", *fast],
                            capsys, monkeypatch)
    assert code == 0, output
    fold_folder = root / "results" / "Tiny_CT" / "3d_cascade_fullres__default" / "fold_0"
    info = json.loads((fold_folder / "training_info.json").read_text())
    assert info["in_channels"] == 1 + 2  # the CT channel, then one-hot labels 1 and 2 of the lowres prediction
    previous = np.load(fold_folder / "previous_stage" / "case_000.npy")
    data = np.load(root / "preprocessed" / "Tiny_CT" / "3d_fullres" / "case_000.npy")
    assert previous.shape == data.shape[1:] and set(np.unique(previous)) <= {0, 1, 2}
    assert (fold_folder / "validation" / "case_000.nii.gz").is_file()
    assert (fold_folder / "validation" / "case_001.npz").is_file()

    code, output = run_main(["find_best_configuration", "-d", "Tiny_CT", "--allow-partial", "--root", root],
                            capsys, monkeypatch)
    assert code == 0, output
    assert "3d_cascade_fullres" in output

    images = tmp_path / "images"
    images.mkdir()
    source = sitk.ReadImage(str(dataset / "imagesTr" / "case_001.nii.gz"))
    sitk.WriteImage(source, str(images / "new_0000.nii.gz"))
    code, output = run_main(["predict", "-i", images, "-o", tmp_path / "out", "-d", "Tiny_CT", "-c",
                             "3d_cascade_fullres", "-f", "0", "--disable-tta", "--device", "cpu", "--no-progress",
                             "--root", root], capsys, monkeypatch)
    assert code == 0, output
    mask = sitk.ReadImage(str(tmp_path / "out" / "new.nii.gz"))
    assert mask.GetSize() == source.GetSize() and mask.GetSpacing() == source.GetSpacing()
    assert mask.GetOrigin() == source.GetOrigin() and mask.GetDirection() == source.GetDirection()
    assert set(np.unique(sitk.GetArrayFromImage(mask))) <= {0, 1, 2}
    record = json.loads((tmp_path / "out" / "autolung_predictions.json").read_text())
    assert record["models"][0]["configuration"] == "3d_cascade_fullres"

    # Without its previous stage a cascade model cannot predict: refused, naming the folder.
    lowres_final = root / "results" / "Tiny_CT" / "3d_lowres__default" / "fold_0" / "checkpoint_final.pt"
    lowres_final.rename(lowres_final.with_name("moved.pt"))
    code, output = run_main(["predict", "-i", images, "-o", tmp_path / "out2", "-d", "Tiny_CT", "-c",
                             "3d_cascade_fullres", "-f", "0", "--device", "cpu", "--no-progress", "--root", root],
                            capsys, monkeypatch)
    assert code == 1 and "3d_lowres__default" in output and "train 3d_lowres with the same folds" in output, output
