"""autolung plot_overlays: one QC picture per training case, raw or preprocessed."""
from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from cli_main import run_main
from conftest import shared_dataset


def _small_copy(tmp_path, cases=3):
    source = shared_dataset("FindingLungs2D")
    target = tmp_path / "Lungs"
    (target / "imagesTr").mkdir(parents=True)
    (target / "labelsTr").mkdir()
    for index in range(cases):
        shutil.copyfile(source / "imagesTr" / f"lungs_{index:03d}_0000.png",
                        target / "imagesTr" / f"lungs_{index:03d}_0000.png")
        shutil.copyfile(source / "labelsTr" / f"lungs_{index:03d}.png", target / "labelsTr" / f"lungs_{index:03d}.png")
    payload = json.loads((source / "dataset.json").read_text())
    payload["numTraining"] = cases
    (target / "dataset.json").write_text(json.dumps(payload))
    return target


def test_plot_overlays_of_a_raw_dataset_draws_every_case_with_red_label_outlines(tmp_path, capsys, monkeypatch):
    dataset = _small_copy(tmp_path)
    out = tmp_path / "qc"
    code, output = run_main(["plot_overlays", "-d", dataset, "-o", out, "--root", tmp_path / "root"],
                            capsys, monkeypatch)
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["lungs_000.png", "lungs_001.png", "lungs_002.png"]
    picture = np.asarray(Image.open(out / "lungs_000.png").convert("RGB")).astype(int)
    red = (picture[..., 0] > 200) & (picture[..., 1] < 60) & (picture[..., 2] < 60)
    assert red.sum() > 20  # the lung outlines are drawn


def test_plot_overlays_of_a_preprocessed_configuration(tmp_path, capsys, monkeypatch):
    dataset = _small_copy(tmp_path, cases=2)
    root = tmp_path / "root"
    code, output = run_main(["plan_and_preprocess", "-d", dataset, "-c", "2d", "-np", "1", "--root", root,
                             "--no-progress"], capsys, monkeypatch)
    assert code == 0, output
    code, output = run_main(["plot_overlays", "-d", dataset, "-c", "2d", "-o", tmp_path / "qc", "--root", root],
                            capsys, monkeypatch)
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "qc").iterdir()) == ["lungs_000.png", "lungs_001.png"]
    code, output = run_main(["plot_overlays", "-d", dataset, "-c", "3d_fullres", "-o", tmp_path / "qc3",
                             "--root", root], capsys, monkeypatch)
    assert code == 1 and "preprocessed folder not found" in output
