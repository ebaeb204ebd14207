"""Restoring network output to the original grid: averaged logits are resampled, then activated."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from autolung.labels import RegionMapping
from autolung.output_kind import output_kind_for_activation
from autolung.planning.plans import InferencePlan
from autolung.preprocessing.case import preprocess_case
from autolung.preprocessing.restore import restore_label_map, restore_to_original, restores_logits

from .helpers import make_configuration, make_plans
from .test_case import _case

MAPPINGS = {"sigmoid": RegionMapping.one_per_label([1, 2]),
            "softmax": RegionMapping(((0,), (1,), (2,)), (0, 1, 2))}


def _logit_model(activation: str, target=(2.5, 1.4, 1.4)):
    configuration = replace(make_configuration("3d_fullres", list(target), anisotropic_axis=0),
                            inference=InferencePlan(output_activation=activation, average_logits=True))
    image, label, geometry = _case()
    _, _, properties = preprocess_case(image, label, geometry, make_plans([configuration]), "3d_fullres")
    channels = MAPPINGS[activation].num_channels
    grid = properties["shape_after_resampling"]
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in grid), indexing="ij")
    # Steep on one side of each boundary and shallow on the other, where the two orders of
    # interpolation part (probabilities cross 0.5 half way between voxels, logits nearer the shallow one).
    steep = np.where(x > 0.05, 40.0, 1.5) * (x - 0.05) + np.where(y > 0.1, 30.0, 2.0) * (y - 0.1) + z
    logits = [steep, -steep - 1.0] if channels == 2 else [np.zeros_like(steep), steep, np.full_like(steep, -3.0)]
    logits = np.stack(logits)
    return configuration, properties, logits.astype(np.float32)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_logits_are_resampled_then_activated_zero_outside_the_crop(activation: str) -> None:
    configuration, properties, logits = _logit_model(activation)
    assert restores_logits(configuration, properties)
    restored = restore_to_original(logits, properties, configuration, logits=True)
    resampled = restore_to_original(logits, properties, configuration)  # the logits, resampled only
    crop = (slice(None), *(slice(lo, hi) for lo, hi in properties["crop_bbox"]))
    kind = output_kind_for_activation(activation)
    expected = np.zeros_like(resampled)
    expected[crop] = kind.probabilities(torch.from_numpy(resampled[crop]), channel_axis=0).numpy()
    np.testing.assert_allclose(restored, expected, atol=1e-6)
    assert (restored[:, :, :3] == 0).all()
    mapping = MAPPINGS[activation]
    labels = restore_label_map(logits, properties, configuration, mapping, logits=True)
    np.testing.assert_array_equal(labels, mapping.probabilities_to_labels(restored))
    # Resampling probabilities instead moves the boundaries: the order matters.
    probabilities = kind.probabilities(torch.from_numpy(logits), channel_axis=0).numpy()
    assert not np.array_equal(restore_label_map(probabilities, properties, configuration, mapping), labels)


def test_logits_are_kept_only_for_logit_averaging_models_off_the_original_grid() -> None:
    configuration, properties, logits = _logit_model("softmax")
    assert not restores_logits(replace(configuration, inference=None), properties)
    assert not restores_logits(replace(configuration, inference=InferencePlan()), properties)
    shape = tuple(properties["shape_before_crop"])
    on_grid = {**properties, "shape_after_crop": shape, "shape_after_resampling": shape,
               "crop_bbox": [[0, n] for n in shape]}
    assert not restores_logits(configuration, on_grid)
    # Painting from logits on the original grid never overwrites the caller's array.
    values = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    before = values.copy()
    sigmoid = replace(configuration, inference=InferencePlan(average_logits=True))
    labels = restore_label_map(values, on_grid, sigmoid, MAPPINGS["sigmoid"], logits=True)
    np.testing.assert_array_equal(values, before)
    np.testing.assert_array_equal(labels, MAPPINGS["sigmoid"].probabilities_to_labels(1 / (1 + np.exp(-values))))
