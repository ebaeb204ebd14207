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
    assert "--precision auto" in warnings[0].getMessage()


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
