"""predict --num-parts/--part-id: processes sharing one output folder, locked per case."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import SimpleITK as sitk

from cli_main import run_main
from conftest import make_case

from .fake_model import tiny_plans, write_fake_model

CASES = ["c0", "c1", "c2", "c3", "c4"]


def _setup(tmp_path, data_root):
    write_fake_model(data_root.results_dataset("Tiny_CT") / "3d_fullres__default", tiny_plans(), bias=0.4)
    images = tmp_path / "images"
    images.mkdir()
    for seed, case in enumerate(CASES):
        sitk.WriteImage(make_case((8, 20, 20), seed=seed)[0], str(images / f"{case}_0000.nii.gz"))
    return images


def _args(images, output, data_root, *extra):
    return ["predict", "-i", str(images), "-o", str(output), "-d", "Tiny_CT", "-c", "3d_fullres", "--disable-tta",
            "--no-progress", "--device", "cpu", "--root", str(data_root.root), *extra]


def test_two_processes_share_one_folder_and_give_the_single_run_result(tmp_path, data_root, capsys, monkeypatch):
    images = _setup(tmp_path, data_root)
    code, output = run_main(_args(images, tmp_path / "single", data_root), capsys, monkeypatch)
    assert code == 0, output
    shared = tmp_path / "shared"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen([sys.executable, "-m", "autolung_cli",
                                   *_args(images, shared, data_root, "--num-parts", "2", "--part-id", str(k))],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for k in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert "3 masks" in outputs[0] and "2 masks" in outputs[1]  # c0 c2 c4 | c1 c3
    for case in CASES:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "single" / f"{case}.nii.gz")))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(shared / f"{case}.nii.gz")))
        assert np.array_equal(a, b), case
    record = json.loads((shared / "autolung_predictions.json").read_text())
    assert sorted(record["cases"]) == CASES  # both processes' cases, none lost to a race
    assert sorted(p.name for p in shared.iterdir()) == sorted([f"{c}.nii.gz" for c in CASES]
                                                             + ["autolung_predictions.json"])


def test_part_id_must_be_below_num_parts(tmp_path, data_root, capsys, monkeypatch):
    images = _setup(tmp_path, data_root)
    code, output = run_main(_args(images, tmp_path / "out", data_root, "--num-parts", "2", "--part-id", "2"),
                            capsys, monkeypatch)
    assert code == 1 and "part_id must be in 0..1, got 2" in output
