from __future__ import annotations

import numpy as np
import pytest

from autolung.errors import InvalidInputError
from autolung.io.geometry import ImageGeometry
from autolung.labels import RegionMapping
from autolung.preprocessing.case import preprocess_case, sample_class_locations
from autolung.preprocessing.restore import LABEL_SLAB, restore_label_map, restore_to_original

from .helpers import make_configuration, make_plans

SPACING = (2.5, 0.7, 0.7)


def _case(shape=(12, 40, 36), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(-800, 30, size=(1, *shape)).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    label[3:9, 10:30, 8:20] = 1
    label[5:7, 25:29, 24:30] = 2
    image[0][label == 1] = 50
    image[0][label == 2] = -300
    image[:, :, :3] = 0  # a zero border to crop away
    label[:, :3] = 0
    geometry = ImageGeometry(shape=shape, spacing=SPACING, origin=(0.0, 0.0, 0.0),
                             direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    return image, label, geometry


def test_preprocess_case_outputs_and_properties() -> None:
    image, label, geometry = _case()
    original = image.copy()
    plans = make_plans([make_configuration("3d_fullres", [2.5, 1.4, 1.4], anisotropic_axis=0)])
    data, seg, props = preprocess_case(image, label, geometry, plans, "3d_fullres", case_id="c0")
    np.testing.assert_array_equal(image, original)  # input untouched
    assert data.dtype == np.float32 and seg.dtype == np.int8
    assert props["crop_bbox"] == [[0, 12], [3, 40], [0, 36]]
    assert props["shape_after_crop"] == [12, 37, 36]
    assert data.shape == (1, 12, 18, 18) and seg.shape == (1, 12, 18, 18)
    assert props["shape_after_resampling"] == [12, 18, 18]
    assert props["spacing_after_resampling"] == [2.5, 1.4, 1.4]
    assert props["plans_digest"] == plans.digest() and props["case_id"] == "c0"
    assert props["original_geometry"]["spacing"] == list(SPACING)
    for value in ("1", "2"):
        coords = np.asarray(props["class_locations"][value])
        assert len(coords) > 0
        assert (seg[0][tuple(coords.T)] == int(value)).all()


def test_2d_configuration_never_resamples_along_z() -> None:
    image, label, geometry = _case()
    plans = make_plans([make_configuration("2d", [1.0, 1.4, 1.4], dim=2)])
    data, seg, props = preprocess_case(image, label, geometry, plans, "2d")
    assert data.shape[1] == 12 and props["spacing_after_resampling"][0] == 2.5


def test_inference_without_label() -> None:
    image, _, geometry = _case()
    plans = make_plans([make_configuration("3d_fullres", [2.5, 0.7, 0.7])])
    data, seg, props = preprocess_case(image, None, geometry, plans, "3d_fullres")
    assert seg is None and props["class_locations"] == {}


def test_mismatched_label_is_a_clear_error() -> None:
    image, label, geometry = _case()
    plans = make_plans([make_configuration("3d_fullres", [2.5, 0.7, 0.7])])
    with pytest.raises(InvalidInputError, match="label shape"):
        preprocess_case(image, label[:-1], geometry, plans, "3d_fullres", case_id="bad")


@pytest.mark.parametrize("target", [[2.5, 1.4, 1.4], [1.25, 0.5, 0.5]])
def test_round_trip_restores_the_original_label_map(target: list[float]) -> None:
    image, label, geometry = _case()
    configuration = make_configuration("3d_fullres", target, anisotropic_axis=0)
    plans = make_plans([configuration])
    _, seg, props = preprocess_case(image, label, geometry, plans, "3d_fullres")
    mapping = RegionMapping.one_per_label([1, 2])
    probabilities = mapping.labels_to_targets(seg[0]).astype(np.float32)
    restored = restore_to_original(probabilities, props, configuration)
    assert restored.shape == (2, *label.shape) and restored.dtype == np.float32
    assert (restored[:, :, :3] == 0).all()  # outside the crop
    labels = mapping.probabilities_to_labels(restored)
    assert (labels == label).mean() > 0.97
    for value in (1, 2):
        overlap = np.logical_and(labels == value, label == value).sum() / (label == value).sum()
        assert overlap > 0.7
    np.testing.assert_array_equal(restore_label_map(probabilities, props, configuration, mapping), labels)


def test_class_locations_are_deterministic_and_capped() -> None:
    seg = np.zeros((10, 50, 50), dtype=np.int8)
    seg[:, :40, :40] = 1  # 16000 voxels
    first = sample_class_locations(seg, [1, 2], max_per_class=1000, min_fraction=0.01)
    again = sample_class_locations(seg, [1, 2], max_per_class=1000, min_fraction=0.01)
    assert first == again and len(first["1"]) == 1000 and first["2"] == []
    many = sample_class_locations(seg, [1], max_per_class=10, min_fraction=0.1)
    assert len(many["1"]) == 1600  # at least 10% of the class


@pytest.mark.parametrize("mapping", [
    RegionMapping.one_per_label([1, 2]),
    RegionMapping(((0,), (1,), (2,)), (0, 1, 2)),  # softmax classes with a background channel
    RegionMapping(((1, 2), (2,)), (1, 2)),  # nested regions
], ids=["disjoint", "softmax", "nested"])
def test_label_map_on_the_network_grid_is_painted_slab_by_slab_as_the_whole(mapping: RegionMapping) -> None:
    shape = (LABEL_SLAB * 2 + 5, 9, 7)  # slabs, with a short last one
    probabilities = np.random.default_rng(3).random((mapping.num_channels, *shape)).astype(np.float32)
    properties = {"shape_before_crop": shape, "shape_after_crop": shape, "shape_after_resampling": shape,
                  "crop_bbox": [[0, n] for n in shape], "anisotropic_axis": None}
    configuration = make_configuration("3d_fullres", [1.0, 1.0, 1.0])
    labels = restore_label_map(probabilities, properties, configuration, mapping)
    np.testing.assert_array_equal(labels, mapping.probabilities_to_labels(probabilities))
    assert len(np.unique(labels)) >= 2
