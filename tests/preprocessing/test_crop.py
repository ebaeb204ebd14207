from __future__ import annotations

import numpy as np

from autolung.preprocessing.crop import crop_to_bbox, is_full_bbox, nonzero_bbox, uncrop


def test_bbox_is_union_over_channels_and_round_trips() -> None:
    image = np.zeros((2, 10, 12, 14), dtype=np.float32)
    image[0, 2:5, 3:7, 4:6] = 1.0
    image[1, 6, 8, 9] = -3.0
    bbox = nonzero_bbox(image)
    assert bbox == [[2, 7], [3, 9], [4, 10]]
    cropped = crop_to_bbox(image, bbox)
    assert cropped.shape == (2, 5, 6, 6)
    restored = uncrop(cropped, bbox, image.shape[1:])
    np.testing.assert_array_equal(restored, image)


def test_all_zero_image_keeps_full_extent() -> None:
    image = np.zeros((1, 4, 5, 6))
    bbox = nonzero_bbox(image)
    assert is_full_bbox(bbox, (4, 5, 6))
    assert crop_to_bbox(image, bbox).shape == image.shape


def test_crop_applies_to_label_maps_and_uncrop_fills() -> None:
    label = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    bbox = [[1, 3], [0, 5], [2, 4]]
    cropped = crop_to_bbox(label, bbox)
    assert cropped.shape == (2, 5, 2)
    full = uncrop(cropped, bbox, (4, 5, 6), fill=-1)
    assert (full[0] == -1).all() and (full[1:3, :, 2:4] == label[1:3, :, 2:4]).all()
