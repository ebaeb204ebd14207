"""Shared fixtures: data roots, the real sets in ../shared/data, and tiny generated datasets."""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autolung.paths import DataRoot

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AUTOLUNG_SHARED_DATA", REPO.parent / "shared" / "data"))

# Small and deterministic: keep torch from fighting over the two cores with test workers.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def shared_dataset(name: str) -> Path:
    """Path of a real labelled set in ../shared/data; skips the test with a reason when absent."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"real dataset {name} not available at {folder} (../shared/data is absent)")
    return folder


class RecordingProgress:
    """A progress reporter (``autolung.progress.ProgressReporter``) keeping every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def start(self, task: str, total: int | None) -> None:
        self.calls.append(("start", task, total))

    def advance(self, task: str, steps: int = 1) -> None:
        self.calls.append(("advance", task, steps))

    def finish(self, task: str) -> None:
        self.calls.append(("finish", task))


@pytest.fixture
def recording_progress() -> RecordingProgress:
    return RecordingProgress()


@pytest.fixture
def data_root(tmp_path: Path) -> DataRoot:
    root = DataRoot(tmp_path / "autolung_root")
    for folder in (root.raw, root.preprocessed, root.results):
        folder.mkdir(parents=True)
    return root


def make_case(shape: tuple[int, int, int], seed: int, spacing=(2.5, 0.7, 0.7)) -> tuple[sitk.Image, sitk.Image]:
    """A CT-like volume with a bright cube (label 1) and a dark blob (label 2)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(-800, 40, size=shape).astype(np.int16)
    label = np.zeros(shape, dtype=np.uint8)
    z, y, x = (s // 4 for s in shape)
    label[z:z + max(2, shape[0] // 3), y:y + shape[1] // 3, x:x + shape[2] // 3] = 1
    label[-z - 2:-z, -y - 4:-y, -x - 4:-x] = 2
    image[label == 1] += 850
    image[label == 2] += 400
    img = sitk.GetImageFromArray(image)
    lab = sitk.GetImageFromArray(label)
    for item in (img, lab):
        item.SetSpacing(tuple(float(s) for s in reversed(spacing)))
        item.SetOrigin((-12.5, 30.0, 4.0))
    return img, lab


def write_tiny_msd(folder: Path, num_cases: int = 4, shape=(12, 32, 32)) -> Path:
    """A tiny Decathlon-layout CT dataset with labels 1 and 2."""
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir(parents=True)
    training = []
    for i in range(num_cases):
        img, lab = make_case(shape, seed=i)
        sitk.WriteImage(img, str(folder / "imagesTr" / f"case_{i:03d}.nii.gz"))
        sitk.WriteImage(lab, str(folder / "labelsTr" / f"case_{i:03d}.nii.gz"))
        training.append({"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"})
    (folder / "dataset.json").write_text(json.dumps({
        "name": folder.name, "tensorImageSize": "3D", "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "bright", "2": "dark"},
        "numTraining": num_cases, "training": training, "test": []}, indent=2))
    return folder


@pytest.fixture
def tiny_msd(data_root: DataRoot) -> Path:
    return write_tiny_msd(data_root.raw / "Tiny_CT")


def write_dicom_series(folder: Path, series_uid: str, z_positions: list[float], prefix: str = "slice") -> None:
    """A tiny CT series: one 8x8 int16 slice per z position, with the tags ITK sorts by."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for index, z in enumerate(z_positions):
        pixels = np.full((8, 8), index * 10, dtype=np.int16)
        image = sitk.GetImageFromArray(pixels)
        image.SetSpacing((0.5, 0.5))
        for tag, value in {
            "0008|0060": "CT", "0020|000d": "1.2.3.4", "0020|000e": series_uid,
            "0008|0018": f"{series_uid}.{index + 1}", "0020|0013": str(index + 1),
            "0020|0032": f"0\\0\\{z}", "0020|0037": "1\\0\\0\\0\\1\\0", "0028|0030": "0.5\\0.5",
        }.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{prefix}_{index:03d}.dcm"))
        writer.Execute(image)


def run_cli_group(group: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run ``autolung <args>`` through the real entry point (error handling included), with only
    the command module ``autolung_cli.commands.<group>`` registered; return the exit code."""
    app_module = importlib.import_module("autolung_cli.app")
    monkeypatch.setattr(app_module, "_register_commands",
                        lambda: importlib.import_module(f"autolung_cli.commands.{group}"))
    monkeypatch.setattr(sys, "argv", ["autolung", *args])
    try:
        app_module.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
