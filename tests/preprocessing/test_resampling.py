from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import zoom

from autolung.preprocessing.resampling import (compute_new_shape, find_anisotropic_axis, resample_axis,
                                               resample_image, resample_labels, resample_probabilities)


def test_new_shape_keeps_physical_extent() -> None:
    assert compute_new_shape((40, 100, 100), (2.5, 0.7, 0.7), (2.5, 1.4, 1.4)) == (40, 50, 50)
    assert compute_new_shape((1, 3, 3), (1.0, 1.0, 1.0), (5.0, 5.0, 5.0)) == (1, 1, 1)


def test_anisotropic_axis_rule() -> None:
    assert find_anisotropic_axis((5.0, 1.0, 1.0), (5.0, 1.0, 1.0)) == 0
    assert find_anisotropic_axis((1.0, 1.0, 1.0), (1.0, 1.0, 1.0)) is None
    assert find_anisotropic_axis((2.0, 1.0, 1.0), (2.0, 1.0, 1.0), configured=0) == 0


@pytest.mark.parametrize("order", [0, 1, 3])
def test_constant_stays_constant(order: int) -> None:
    data = np.full((1, 6, 9, 7), 42.0, dtype=np.float32)
    out = resample_image(data, (11, 4, 13), order=order)
    assert out.shape == (1, 11, 4, 13) and out.dtype == np.float32
    np.testing.assert_allclose(out, 42.0, rtol=1e-5)


def test_unchanged_shape_is_not_resampled() -> None:
    data = np.random.default_rng(0).normal(size=(2, 5, 6, 7)).astype(np.float32)
    out = resample_image(data, (5, 6, 7))
    np.testing.assert_array_equal(out, data)


def test_cubic_matches_scipy_spline_away_from_edges() -> None:
    volume = np.random.default_rng(1).normal(size=(20, 24, 22)).astype(np.float32)
    new_shape = (14, 17, 30)
    ours = resample_image(volume[None], new_shape, order=3)[0]
    factors = [n / s for n, s in zip(new_shape, volume.shape)]
    reference = zoom(volume, factors, order=3, mode="mirror", grid_mode=True)
    np.testing.assert_allclose(ours[3:-3, 3:-3, 3:-3], reference[3:-3, 3:-3, 3:-3], atol=1e-4)


def test_anisotropic_path_resamples_slices_in_plane_and_nearest_across() -> None:
    rng = np.random.default_rng(2)
    volume = rng.normal(size=(4, 20, 20)).astype(np.float32)
    out = resample_image(volume[None], (8, 10, 10), order=3, anisotropic_axis=0, order_out_of_plane=0)[0]
    for index in range(4):
        in_plane = resample_axis(resample_axis(volume[index:index + 1], 1, 10, 3), 2, 10, 3)[0]
        # Nearest along z: each input slice appears twice, resampled in-plane only.
        np.testing.assert_allclose(out[2 * index], in_plane, atol=1e-5)
        np.testing.assert_allclose(out[2 * index + 1], in_plane, atol=1e-5)


@pytest.mark.parametrize("length, new_length", [(6, 3), (8, 4), (7, 3), (5, 9), (10, 4)])
def test_nearest_neighbour_picks_what_scipy_order_0_picks_ties_included(length: int, new_length: int) -> None:
    """Halving an axis puts every coordinate on a tie: the upper sample wins, as in scipy (and so in
    nnU-Net's resampling of imported models' logits); half-to-even rounding kept the lower one."""
    from scipy.ndimage import map_coordinates

    values = np.arange(length, dtype=np.float32)
    coordinates = (np.arange(new_length) + 0.5) * (length / new_length) - 0.5
    expected = map_coordinates(values, [coordinates], order=0, mode="nearest")
    np.testing.assert_array_equal(resample_axis(values, 0, new_length, 0), expected)
    if (length, new_length) == (6, 3):
        np.testing.assert_array_equal(expected, [1, 3, 5])


def test_linear_out_of_plane_interpolates_between_slices() -> None:
    volume = np.stack([np.zeros((6, 6)), np.full((6, 6), 10.0)]).astype(np.float32)
    out = resample_image(volume[None], (4, 6, 6), anisotropic_axis=0, order_out_of_plane=1)[0]
    np.testing.assert_allclose(out[:, 0, 0], [0.0, 2.5, 7.5, 10.0], atol=1e-5)


def test_label_resampling_keeps_every_class_including_a_tiny_one() -> None:
    seg = np.zeros((12, 30, 30), dtype=np.uint8)
    seg[2:10, 5:25, 5:20] = 1
    seg[3:9, 6:14, 22:28] = 2
    seg[6, 27, 3] = 3  # one voxel: smaller than any voxel of the coarser grid
    out = resample_labels(seg, (5, 11, 11))
    assert out.dtype == np.int8 and out.shape == (5, 11, 11)
    assert set(np.unique(out)) == {0, 1, 2, 3}


def test_label_resampling_never_invents_classes_and_upsamples_faithfully() -> None:
    seg = np.zeros((6, 10, 10), dtype=np.uint8)
    seg[1:5, 2:8, 2:8] = 2
    out = resample_labels(seg, (12, 20, 20), anisotropic_axis=0, order_out_of_plane=0)
    assert set(np.unique(out)) == {0, 2}
    back = out[::2, ::2, ::2]
    assert (back == seg).mean() > 0.9


def test_probabilities_resampled_per_channel_into_float32() -> None:
    probabilities = np.random.default_rng(3).random((2, 5, 8, 8)).astype(np.float16)
    out = resample_probabilities(probabilities, (10, 16, 16))
    assert out.shape == (2, 10, 16, 16) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
