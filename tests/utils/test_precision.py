"""Precision choice on CPUs with and without native bfloat16."""
from __future__ import annotations

import logging

import pytest
import torch

from autolung.inference import sliding_window
from autolung.training import hardware
from autolung.utils import precision


@pytest.fixture(autouse=True)
def _fresh_warning_cache():
    precision._log_emulated_bf16_once.cache_clear()
    yield
    precision._log_emulated_bf16_once.cache_clear()


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_precision_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(sliding_window, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    assert sliding_window.resolve_precision("auto", "cpu") == expected
    dtype = hardware.autocast_dtype(torch.device("cpu"), "auto")
    assert dtype == (torch.bfloat16 if native else None)


def test_forced_bf16_on_emulating_cpu_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="autolung.utils.precision"):
        assert sliding_window.resolve_precision("bfloat16", "cpu") == "bfloat16"
        assert hardware.autocast_dtype(torch.device("cpu"), "bfloat16") == torch.bfloat16
    warnings = [r for r in caplog.records if "no native bfloat16" in r.getMessage()]
    assert len(warnings) == 1
    assert "set `precision` to auto" in warnings[0].getMessage()


def test_forced_bf16_on_native_cpu_or_gpu_is_silent(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    with caplog.at_level(logging.WARNING, logger="autolung.utils.precision"):
        assert precision.warn_if_emulated_bf16("cpu") is False
        assert sliding_window.resolve_precision("bfloat16", "cpu") == "bfloat16"
    assert not caplog.records
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="autolung.utils.precision"):
        assert precision.warn_if_emulated_bf16("cuda") is False
    assert not caplog.records
    assert precision.warn_if_emulated_bf16("cpu") is True


def _small_network() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv3d(1, 4, (1, 3, 3)), torch.nn.ReLU(), torch.nn.Conv3d(4, 8, 3),
                               torch.nn.Conv3d(8, 2, 1))


@pytest.fixture()
def _fresh_bf16_check():
    precision.bf16_matches_float32.cache_clear()
    yield
    precision.bf16_matches_float32.cache_clear()


def test_convolution_shapes_are_the_first_and_the_widest():
    shapes = precision.convolution_shapes(_small_network())
    assert shapes == [precision.ConvolutionShape(1, 4, (1, 3, 3)), precision.ConvolutionShape(4, 8, (3, 3, 3))]
    assert precision.convolution_shapes(torch.nn.ReLU()) == []


def test_real_bf16_convolution_is_within_the_bound():
    error = precision.bf16_error(precision.ConvolutionShape(4, 8, (3, 3, 3)), "cpu")
    assert 0 < error < precision.BF16_ERROR_BOUND / 5


def test_auto_falls_back_to_float32_when_bf16_is_wrong(monkeypatch, caplog, _fresh_bf16_check):
    calls = []

    def wrong(shape, device_type):  # simulates pytorch #169688: bf16 results off by a factor
        calls.append(shape)
        reference = torch.randn(1, shape.out_channels, 4, 4, 4)
        return reference * 1.3, reference

    monkeypatch.setattr(sliding_window, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision, "_bf16_and_float32", wrong)
    network = _small_network()
    with caplog.at_level(logging.WARNING):
        assert sliding_window.resolve_precision("auto", "cpu", network) == "float32"
        assert sliding_window.resolve_precision("auto", "cpu", network) == "float32"
    assert len(calls) == 1  # checked once per process, stopped at the first wrong shape
    assert caplog.text.count("falls back to float32") == 1 and "169688" in caplog.text
    # An explicit request is not second-guessed, and without native bf16 nothing is checked.
    assert sliding_window.resolve_precision("bfloat16", "cpu", network) == "bfloat16"


def test_auto_keeps_bf16_when_it_agrees_and_nan_counts_as_wrong(monkeypatch, _fresh_bf16_check):
    def close(shape, device_type):
        reference = torch.randn(1, shape.out_channels, 4, 4, 4)
        return reference.bfloat16().float(), reference

    monkeypatch.setattr(sliding_window, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision, "_bf16_and_float32", close)
    assert sliding_window.resolve_precision("auto", "cpu", _small_network()) == "bfloat16"
    precision.bf16_matches_float32.cache_clear()

    def not_finite(shape, device_type):
        reference = torch.randn(1, shape.out_channels, 4, 4, 4)
        return torch.full_like(reference, float("nan")), reference

    monkeypatch.setattr(precision, "_bf16_and_float32", not_finite)
    assert sliding_window.resolve_precision("auto", "cpu", _small_network()) == "float32"
