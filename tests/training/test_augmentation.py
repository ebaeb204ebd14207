from __future__ import annotations

import math

import numpy as np
import pytest

from autolung.training.augmentation.base import Compose, Maybe, Sample
from autolung.training.augmentation.intensity import (
    Brightness,
    Contrast,
    Gamma,
    GaussianBlur,
    GaussianNoise,
    LowResolution,
    adjust_contrast,
    adjust_gamma,
)
from autolung.training.augmentation.mirror import RandomMirror, mirror
from autolung.training.augmentation.recipe import default_pipeline, plan_augmentation
from autolung.training.augmentation.spatial import (
    RandomAffineCrop,
    affine_crop,
    initial_patch_size,
    rotation_matrix,
)


def _blob_sample(shape=(24, 24, 24)) -> Sample:
    seg = np.zeros((1, *shape), dtype=np.int8)
    seg[0, 6:16, 8:20, 5:12] = 1
    data = (seg * 10).astype(np.float32) + np.linspace(0, 1, shape[-1], dtype=np.float32)
    return Sample(data, seg)


@pytest.mark.parametrize("transform", [GaussianNoise(), GaussianBlur(p_per_channel=1.0), Brightness(), Contrast(),
                                       LowResolution(p_per_channel=1.0), Gamma(invert=True), Gamma(),
                                       RandomMirror((0, 1, 2)),
                                       RandomAffineCrop((16, 16, 16), math.radians(30), p_rotation=1, p_scale=1)])
def test_deterministic_twins_replay_exactly(transform):
    sample = _blob_sample()
    params = transform.sample(np.random.default_rng(3), sample)
    once = transform.apply(sample, params)
    twice = transform.apply(sample, params)
    assert np.array_equal(once.data, twice.data) and np.array_equal(once.seg, twice.seg)
    # Same seed, same result through the random front end too.
    a = transform(sample, np.random.default_rng(11))
    b = transform(sample, np.random.default_rng(11))
    assert np.array_equal(a.data, b.data)


def test_maybe_wrapper_probability():
    sample = _blob_sample((4, 4, 4))
    wrapped = Maybe(Brightness((2.0, 2.0)), p=0.25)
    rng = np.random.default_rng(0)
    applied = [not np.array_equal(wrapped(sample, rng).data, sample.data) for _ in range(2000)]
    assert 0.2 < np.mean(applied) < 0.3
    assert np.array_equal(Maybe(Brightness(), p=0.0)(sample, rng).data, sample.data)


def test_spatial_transform_keeps_image_and_labels_aligned():
    sample = _blob_sample()
    matrix = rotation_matrix([0.4, -0.3, 0.2]) @ np.diag([0.8, 0.8, 0.8])
    out = affine_crop(sample, matrix, (16, 16, 16))
    assert out.data.shape == (1, 16, 16, 16) and out.seg.shape == (1, 16, 16, 16)
    inside = out.seg[0] == 1
    assert inside.sum() > 100
    # Bright voxels are labelled and labelled voxels are bright, except at the interpolated rim.
    agreement = np.mean((out.data[0] > 5) == inside)
    assert agreement > 0.95


def test_mirror_keeps_alignment_and_is_an_involution():
    sample = _blob_sample()
    flipped = mirror(sample, (0, 2))
    assert np.array_equal(flipped.seg[0] == 1, flipped.data[0] > 5)
    assert np.array_equal(mirror(flipped, (0, 2)).data, sample.data)


def test_identity_affine_is_centre_crop():
    sample = _blob_sample()
    crop = affine_crop(sample, None, (16, 16, 16))
    same = affine_crop(sample, np.eye(3), (16, 16, 16))
    assert np.allclose(crop.data, same.data, atol=1e-4) and np.array_equal(crop.seg, same.seg)


def test_intensity_twins_values():
    channel = np.array([0.0, 1.0, 2.0, 3.0], dtype=np.float32)
    assert adjust_contrast(channel, 2.0).tolist() == [0.0, 0.5, 2.5, 3.0]  # mean 1.5, clipped to [0, 3]
    gamma = adjust_gamma(channel, (2.0, False))
    assert gamma.mean() == pytest.approx(channel.mean(), abs=1e-5)
    assert gamma.std() == pytest.approx(channel.std(), abs=1e-5)
    assert np.allclose(adjust_gamma(channel, (1.0, True)), channel, atol=1e-5)


def test_anisotropic_3d_uses_in_plane_augmentation():
    plan = plan_augmentation((8, 32, 32), (4.0, 0.8, 0.8))
    assert plan.in_plane_axis == 0
    assert plan.sample_size[0] == 8 and plan.sample_size[1] > 32
    transform = RandomAffineCrop(plan.patch_size, math.pi, p_rotation=1, p_scale=1, in_plane_axis=0)
    for seed in range(5):
        matrix = transform.sample(np.random.default_rng(seed), _blob_sample()).matrix
        assert matrix[0].tolist() == [1.0, 0.0, 0.0] and matrix[:, 0].tolist() == [1.0, 0.0, 0.0]
    assert plan_augmentation((16, 16, 16), (1, 1, 1)).in_plane_axis is None


def test_initial_patch_size_and_pipeline_output_shape():
    assert initial_patch_size((32, 32), math.pi) >= (32, 32)
    assert initial_patch_size((32, 32), math.pi)[0] >= int(32 * math.sqrt(2))
    plan = plan_augmentation((16, 16), (999.0, 1.0, 1.0))
    pipeline = default_pipeline(plan)
    assert isinstance(pipeline, Compose)
    rng = np.random.default_rng(0)
    seg = np.zeros((1, *plan.sample_size), dtype=np.int8)
    data = np.random.default_rng(1).normal(size=(1, *plan.sample_size)).astype(np.float32)
    for _ in range(20):
        out = pipeline(Sample(data, seg), rng)
        assert out.data.shape == (1, 16, 16) and out.data.dtype == np.float32 and out.seg.shape == (1, 16, 16)


def test_zero_strength_keeps_only_the_crop_and_mirroring():
    plan = plan_augmentation((16, 16), (999.0, 1.0, 1.0))
    rng = np.random.default_rng(0)
    data = np.random.default_rng(1).normal(size=(1, *plan.sample_size)).astype(np.float32)
    seg = np.zeros((1, *plan.sample_size), dtype=np.int8)
    centre = tuple(slice((s - 16) // 2, (s - 16) // 2 + 16) for s in plan.sample_size)
    crop = data[(slice(None), *centre)]
    mirrors = [crop, crop[:, ::-1], crop[:, :, ::-1], crop[:, ::-1, ::-1]]
    pipeline = default_pipeline(plan, strength=0.0)
    for _ in range(20):
        out = pipeline(Sample(data, seg), rng).data
        assert any(np.allclose(out, m, atol=1e-5) for m in mirrors)


def test_strength_scales_every_probability():
    plan = plan_augmentation((16, 16), (999.0, 1.0, 1.0))
    full, half = default_pipeline(plan), default_pipeline(plan, strength=0.5)

    def probabilities(pipeline: Compose) -> list[float]:
        affine = pipeline.transforms[0]
        return [affine.p_rotation, affine.p_scale] + [t.p for t in pipeline.transforms if isinstance(t, Maybe)]

    assert probabilities(half) == pytest.approx([p / 2 for p in probabilities(full)])
    with pytest.raises(ValueError, match="strength"):
        default_pipeline(plan, strength=1.5)
