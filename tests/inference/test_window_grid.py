"""Window grid and weights: starts cover each axis, the Gaussian is centred, per-axis sums are exact."""
from __future__ import annotations

import numpy as np
import pytest

from autolung.inference.window_grid import compute_steps, gaussian_importance, separable_weight_sums, window_starts


def test_steps_cover_the_axis():
    assert compute_steps(10, 16, 0.5) == [0]
    assert compute_steps(32, 16, 0.5) == [0, 8, 16]
    steps = compute_steps(37, 16, 0.5)
    assert steps[0] == 0 and steps[-1] == 21 and max(np.diff(steps)) <= 8


def test_gaussian_is_centred_and_positive():
    weights = gaussian_importance((8, 16, 16))
    assert weights.max() == pytest.approx(1.0) and weights.min() > 0
    assert np.allclose(weights, weights[::-1, ::-1, ::-1])


@pytest.mark.parametrize("shape,patch,step", [((11, 37, 29), (8, 16, 16), 0.5), ((20, 30, 41), (6, 12, 10), 0.7),
                                              ((5, 40, 40), (1, 16, 16), 0.5)])
def test_separable_weight_sums_equal_the_summed_weight_volume(shape, patch, step):
    summed = np.zeros(shape)
    for window in window_starts(shape, patch, step):
        summed[window] += gaussian_importance(patch)
    z, y, x = separable_weight_sums(shape, patch, step)
    np.testing.assert_allclose(z[:, None, None] * y[None, :, None] * x[None, None, :], summed, rtol=1e-6)


def test_windows_come_in_z_order_of_their_starts():
    starts = [window[0].start for window in window_starts((30, 20, 20), (8, 16, 16), 0.5)]
    assert starts == sorted(starts) and starts[0] == 0 and starts[-1] == 22
