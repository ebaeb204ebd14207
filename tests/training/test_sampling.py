from __future__ import annotations

import numpy as np
import pytest

from autolung.training.data.batches import STREAM_TRAIN, BatchBuilder
from autolung.training.data.cases import Case, CaseStore
from autolung.training.data.sampler import crop_padded, forced_foreground_flags, sample_patch

from .helpers import DATASET, write_tiny_preprocessed


def _corner_case() -> Case:
    # A 40^3 volume whose only foreground is a 3^3 cube in one corner.
    seg = np.zeros((1, 40, 40, 40), dtype=np.int8)
    seg[0, 2:5, 2:5, 2:5] = 1
    data = seg.astype(np.float32)
    locations = {"1": np.argwhere(seg[0] == 1).tolist(), "2": []}
    return Case("corner", data, seg, {"class_locations": locations})


@pytest.mark.parametrize("batch, expected", [(1, [False]), (2, [False, True]), (3, [False, False, True]),
                                             (6, [False] * 4 + [True] * 2)])
def test_forced_flags(batch, expected):
    assert forced_foreground_flags(batch, 0.33) == expected


def test_forced_patches_always_contain_foreground_random_ones_rarely():
    case = _corner_case()
    rng = np.random.default_rng(0)
    forced = [sample_patch(case, (8, 8, 8), True, rng).seg.any() for _ in range(200)]
    random = [sample_patch(case, (8, 8, 8), False, rng).seg.any() for _ in range(400)]
    assert all(forced)
    # Random 8^3 patches whose corner is uniform over 33^3 positions hit the corner cube rarely.
    assert 0.0 <= float(np.mean(random)) < 0.1


def test_batch_oversampling_statistics(tmp_path):
    from autolung.paths import DataRoot

    root = DataRoot(tmp_path)
    plans = write_tiny_preprocessed(root, num_cases=3, shape=(20, 40, 40))
    store = CaseStore(root.preprocessed_configuration(DATASET, "3d_fullres"))
    builder = BatchBuilder(store, ["case_000", "case_001", "case_002"], (8, 8, 8), (8, 8, 8),
                           forced_foreground_flags(3, 0.33), plans.region_mapping, "bce_dice", None, 0, STREAM_TRAIN)
    hits = np.array([[b.target[i].any() for i in range(3)] for b in (builder.build(n) for n in range(60))])
    assert hits[:, 2].all()  # the forced third
    assert hits[:, :2].mean() < 0.9


def test_patch_larger_than_image_is_padded_and_2d_sampling():
    seg = np.zeros((1, 3, 6, 6), dtype=np.int8)
    seg[0, 1, 2:4, 2:4] = 2
    locations = {"2": np.argwhere(seg[0] == 2).tolist()}
    case = Case("small", np.ones((1, 3, 6, 6), np.float32), seg, {"class_locations": locations})
    rng = np.random.default_rng(1)
    patch = sample_patch(case, (8, 10, 10), False, rng)
    assert patch.data.shape == (1, 8, 10, 10)
    assert patch.data.sum() == 3 * 6 * 6  # all of the image, zero padding elsewhere
    flat = sample_patch(case, (4, 4), True, rng)
    assert flat.data.shape == (1, 4, 4) and (flat.seg == 2).any()


def test_crop_padded_offsets():
    array = np.arange(10)[None]
    assert crop_padded(array, [-2], [5]).tolist() == [[0, 0, 0, 1, 2]]
    assert crop_padded(array, [8], [4]).tolist() == [[8, 9, 0, 0]]


def test_batches_are_a_function_of_their_index(tmp_path):
    from autolung.paths import DataRoot
    from autolung.training.augmentation.recipe import default_pipeline, plan_augmentation

    root = DataRoot(tmp_path)
    plans = write_tiny_preprocessed(root, num_cases=2)
    store = CaseStore(root.preprocessed_configuration(DATASET, "3d_fullres"))
    plan = plan_augmentation((16, 16, 16), (1, 1, 1))
    builder = BatchBuilder(store, ["case_000", "case_001"], plan.patch_size, plan.sample_size, [False, True],
                           plans.region_mapping, "bce_dice", default_pipeline(plan), 7, STREAM_TRAIN)
    first, again, other = builder.build(5), builder.build(5), builder.build(6)
    assert first.data.shape == (2, 1, 16, 16, 16) and first.target.shape == (2, 2, 16, 16, 16)
    assert np.array_equal(first.data, again.data) and np.array_equal(first.target, again.target)
    assert not np.array_equal(first.data, other.data)
