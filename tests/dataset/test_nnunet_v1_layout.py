"""nnU-Net v1 raw folders: Decathlon-style dataset.json, one file per channel (``_0000``)."""
from __future__ import annotations

import json
import shutil

import numpy as np

from autolung.dataset.layout import load_dataset, read_case
from autolung.io.images import read_image

from cli_main import run_main
from conftest import shared_dataset


def _v1_copy(tmp_path, channels: int = 1):
    source = shared_dataset("Task04_Hippocampus")
    payload = json.loads((source / "dataset.json").read_text())
    entries = payload["training"][:4]
    target = tmp_path / "Task004_Hippocampus"
    (target / "imagesTr").mkdir(parents=True)
    (target / "labelsTr").mkdir()
    for entry in entries:
        case = entry["image"].split("/")[-1].removesuffix(".nii.gz")
        for channel in range(channels):
            shutil.copyfile(source / entry["image"], target / "imagesTr" / f"{case}_{channel:04d}.nii.gz")
        shutil.copyfile(source / entry["label"], target / entry["label"])
    payload.update(training=entries, numTraining=len(entries),
                   modality={str(c): f"MRI{c}" for c in range(channels)})
    (target / "dataset.json").write_text(json.dumps(payload))
    return source, target, entries


def test_v1_folder_is_read_with_its_channel_files(tmp_path, capsys, monkeypatch):
    source, target, entries = _v1_copy(tmp_path)
    spec = load_dataset(target)
    assert len(spec.cases) == 4 and spec.num_channels == 1
    case = spec.cases[0]
    assert [p.name for p in case.images] == [f"{case.case_id}_0000.nii.gz"]
    image, label, _ = read_case(spec, case)
    original, _ = read_image(source / entries[0]["image"])
    assert np.array_equal(image, original.astype(np.float32)) and label is not None and label.max() == 2
    code, output = run_main(["verify", "-d", target, "--root", tmp_path / "root"], capsys, monkeypatch)
    assert code == 0, output
    code, output = run_main(["fingerprint", "-d", target, "--root", tmp_path / "root", "-np", "1"], capsys,
                            monkeypatch)
    assert code == 0, output
    fingerprint = json.loads((tmp_path / "root" / "preprocessed" / target.name / "fingerprint.json").read_text())
    assert fingerprint["num_cases"] == 4 and fingerprint["channel_names"] == ["MRI0"]


def test_v1_multichannel_case_stacks_its_channel_files(tmp_path):
    _, target, _ = _v1_copy(tmp_path, channels=2)
    spec = load_dataset(target)
    case = spec.cases[0]
    assert [p.name[-12:] for p in case.images] == ["_0000.nii.gz", "_0001.nii.gz"]
    image, _, _ = read_case(spec, case)
    assert image.shape[0] == 2 and np.array_equal(image[0], image[1])
    (target / "imagesTr" / f"{case.case_id}_0001.nii.gz").unlink()
    from autolung.dataset.verify import verify_dataset

    problems = verify_dataset(target)
    assert any(f"{case.case_id}_0001.nii.gz" in str(p.path) for p in problems)
