"""nnU-Net's window weights: a unit impulse at ``patch // 2`` filtered with scipy's Gaussian (sigma = patch / 8)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from autolung.inference.window_grid import window_weights


@pytest.mark.parametrize("patch", [(1, 16, 24), (8, 13, 20), (40, 56, 40)])
def test_nnunet_window_weights_match_a_filtered_impulse(patch) -> None:
    impulse = np.zeros(patch)
    impulse[tuple(p // 2 for p in patch)] = 1
    expected = gaussian_filter(impulse, [p / 8 for p in patch], 0, mode="constant", cval=0)
    expected /= expected.max()
    expected[expected == 0] = expected[expected != 0].min()
    assert np.allclose(window_weights(patch, "nnunet"), expected, rtol=1e-5, atol=1e-7)
