from __future__ import annotations

import numpy as np

from autolung.labels import RegionMapping


def test_disjoint_round_trip_and_argmax():
    mapping = RegionMapping.one_per_label([2, 1])
    seg = np.array([[0, 1, 2, 2]], dtype=np.uint8)
    targets = mapping.labels_to_targets(seg)
    assert targets.shape == (2, 1, 4)
    assert mapping.probabilities_to_labels(targets.astype(np.float32)).tolist() == seg.tolist()
    probs = np.array([[[0.6, 0.2, 0.4]], [[0.7, 0.1, 0.3]]], dtype=np.float32)
    assert mapping.probabilities_to_labels(probs).tolist() == [[2, 0, 0]]


def test_nested_regions_paint_inner_last():
    mapping = RegionMapping(regions=((1, 2), (2,)), paint_labels=(1, 2))
    assert not mapping.is_disjoint
    seg = np.array([0, 1, 2], dtype=np.uint8)
    targets = mapping.labels_to_targets(seg)
    assert targets.tolist() == [[0, 1, 1], [0, 0, 1]]
    assert mapping.probabilities_to_labels(targets.astype(np.float32)).tolist() == [0, 1, 2]
