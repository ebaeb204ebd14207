"""predict --device auto (the default), and the sliding window on CUDA against the CPU."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from autolung.inference.sliding_window import predict_sliding_window

from cli_main import run_main
from conftest import make_case

from .fake_model import tiny_plans, write_fake_model

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def test_auto_device_is_the_default_and_resolves_like_training(tmp_path, data_root, capsys, monkeypatch, caplog):
    from autolung.inference.predictor import resolve_prediction_device
    from autolung.training.hardware import resolve_device

    assert resolve_prediction_device("auto") == resolve_device("auto")
    write_fake_model(data_root.results_dataset("Tiny_CT") / "3d_fullres__default", tiny_plans(), bias=0.4)
    images = tmp_path / "images"
    images.mkdir()
    image, _ = make_case((8, 20, 20), seed=0)
    sitk.WriteImage(image, str(images / "c0_0000.nii.gz"))
    base = ["predict", "-i", images, "-d", "Tiny_CT", "-c", "3d_fullres", "--disable-tta", "--no-progress",
            "--root", data_root.root]
    with caplog.at_level(logging.INFO, logger="autolung.inference.predictor"):
        code, output = run_main([*base, "-o", tmp_path / "auto"], capsys, monkeypatch)
    assert code == 0, output
    assert f"predicting on {resolve_device('auto')}" in caplog.text
    code, output = run_main([*base, "-o", tmp_path / "cpu", "--device", "cpu"], capsys, monkeypatch)
    assert code == 0, output
    if resolve_device("auto").type == "cpu":  # same device, same masks
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "auto" / "c0.nii.gz")))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "cpu" / "c0.nii.gz")))
        assert np.array_equal(a, b)
    if not torch.cuda.is_available():
        code, output = run_main([*base, "-o", tmp_path / "cuda", "--device", "cuda"], capsys, monkeypatch)
        assert code == 1 and "no CUDA GPU" in output


def _network():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1))


@CUDA
def test_cuda_matches_the_cpu_and_returns_probabilities_on_the_cpu():
    data = np.random.default_rng(0).normal(size=(1, 20, 40, 40)).astype(np.float32)
    on_cpu = predict_sliding_window(_network(), data, (8, 16, 16), device="cpu", precision="float32")
    on_gpu = predict_sliding_window(_network(), data, (8, 16, 16), device="cuda", precision="float32")
    assert isinstance(on_gpu, np.ndarray) and on_gpu.shape == on_cpu.shape
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-4)
