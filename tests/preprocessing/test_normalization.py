from __future__ import annotations

import numpy as np
import pytest

from autolung.errors import InvalidPlansError
from autolung.planning.plans import NormalizationPlan
from autolung.preprocessing.normalization import normalize


def test_ct_clips_then_uses_dataset_statistics() -> None:
    data = np.array([[[[-2000.0, -1000.0, 0.0, 100.0, 3000.0]]]], dtype=np.float32)
    plan = NormalizationPlan("CT", "ct", clip_low=-1000.0, clip_high=500.0, mean=-250.0, std=250.0)
    normalize(data, [plan])
    np.testing.assert_allclose(data[0, 0, 0], [-3.0, -3.0, 1.0, 1.4, 3.0])


def test_zscore_uses_the_image() -> None:
    data = np.random.default_rng(0).normal(50, 7, size=(1, 4, 8, 8)).astype(np.float32)
    normalize(data, [NormalizationPlan("MR", "zscore")])
    assert abs(data.mean()) < 1e-4 and abs(data.std() - 1) < 1e-4


def test_zscore_nonzero_ignores_and_zeroes_the_background() -> None:
    data = np.zeros((1, 2, 4, 4), dtype=np.float32)
    data[0, :, 1:3, 1:3] = [[10.0, 20.0], [30.0, 40.0]]
    normalize(data, [NormalizationPlan("MR", "zscore_nonzero")])
    inside = data[0, :, 1:3, 1:3]
    assert abs(inside.mean()) < 1e-5 and abs(inside.std() - 1) < 1e-5
    assert (data[0, :, 0] == 0).all()


def test_rescale_0_1_divides_8_bit_values() -> None:
    data = np.array([[[[0.0, 51.0, 255.0]]]], dtype=np.float32)
    normalize(data, [NormalizationPlan("RGB", "rescale_0_1")])
    np.testing.assert_allclose(data[0, 0, 0], [0.0, 0.2, 1.0])


def test_channel_count_mismatch_is_a_plans_error() -> None:
    with pytest.raises(InvalidPlansError):
        normalize(np.zeros((2, 1, 1, 1), dtype=np.float32), [NormalizationPlan("CT", "zscore")])
