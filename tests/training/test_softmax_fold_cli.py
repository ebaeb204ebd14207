"""A softmax-classes fold end to end through the CLI: trained, validated, recorded, predicted,
and still predicted the same from a training_info.json written before ``output_kind`` existed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from autolung.paths import DataRoot
from autolung.planning.plans import Plans
from autolung_cli.app import _register_commands, app

_register_commands()
runner = CliRunner()


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def _predict(images: Path, output: Path, root: list[str]) -> tuple[np.ndarray, np.ndarray]:
    _invoke("predict", "-i", str(images), "-o", str(output), "-d", "Tiny_CT", "-c", "2d", "-f", "0",
            "--disable-tta", "--save-probabilities", "--device", "cpu", "--no-progress", *root)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(output / "case_000.nii.gz")))
    with np.load(output / "case_000.npz") as saved:
        return mask, saved["probabilities"].astype(np.float32)


@pytest.mark.slow
def test_softmax_fold_through_the_cli(data_root: DataRoot, tiny_msd: Path, tmp_path: Path) -> None:
    root = ["--root", str(data_root.root)]
    _invoke("plan", "-d", "Tiny_CT", "-np", "1", "--planner", "default", *root)
    plans = Plans.load(data_root.plans_file("Tiny_CT"))
    architecture = plans.configurations["2d"].architecture
    architecture.features_per_stage = [4 * 2 ** min(i, 2) for i in range(architecture.num_stages)]  # tiny
    plans.save(data_root.plans_file("Tiny_CT"))
    _invoke("preprocess", "-d", "Tiny_CT", "-c", "2d", "-np", "1", "--no-progress", *root)
    _invoke("train", "-d", "Tiny_CT", "-c", "2d", "-f", "0", "--loss", "ce_dice", "--epochs", "1",
            "--iters-per-epoch", "2", "--val-iters", "1", "--device", "cpu", "--num-workers", "0",
            "--threads", "1", *root)

    fold = data_root.training_output("Tiny_CT", "2d") / "fold_0"
    info_path = fold / "training_info.json"
    info = json.loads(info_path.read_text())
    assert (info["output_kind"], info["loss"], info["output_activation"]) == ("softmax_classes", "ce_dice",
                                                                              "softmax")
    assert info["out_channels"] == 3  # background + two labels
    val_cases = json.loads(data_root.splits_file("Tiny_CT").read_text())[0]["val"]
    for case_id in val_cases:
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(fold / "validation" / f"{case_id}.nii.gz")))
        assert mask.shape == (12, 32, 32) and set(np.unique(mask)) <= {0, 1, 2}
    assert json.loads((fold / "validation" / "summary.json").read_text())["num_cases"] == len(val_cases)

    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(tiny_msd / "imagesTr" / "case_000.nii.gz", images)
    mask, probabilities = _predict(images, tmp_path / "now", root)
    # Foreground softmax probabilities, one channel per label: they never sum past 1.
    assert probabilities.shape == (2, 12, 32, 32) and probabilities.sum(0).max() <= 1.0 + 1e-2

    earlier = {key: value for key, value in info.items() if key not in ("output_kind", "loss")}
    info_path.write_text(json.dumps(earlier))
    earlier_mask, earlier_probabilities = _predict(images, tmp_path / "earlier", root)
    assert np.array_equal(earlier_mask, mask) and np.array_equal(earlier_probabilities, probabilities)

    info_path.write_text(json.dumps({**info, "output_activation": "sigmoid"}))
    result = runner.invoke(app, ["predict", "-i", str(images), "-o", str(tmp_path / "bad"), "-d", "Tiny_CT",
                                 "-c", "2d", "-f", "0", "--device", "cpu", "--no-progress", *root])
    assert result.exit_code != 0
    said = f"{result.output} {result.exception}"
    assert "fold_0/training_info.json" in said and "disagrees with itself" in said
