"""Z stream: each slice is written once, when no later window reaches it, and normalised there."""
from __future__ import annotations

import numpy as np
import torch

from autolung.inference.slab_stream import SlabNormaliser, ZStream
from autolung.output_kind import output_kind_for_activation

WHOLE_PLANE = (slice(0, 2), slice(0, 2))


def _into(out: np.ndarray):
    """A stream writer that stores finished slabs in ``out``, as a whole-volume sink would."""
    def write(begin: int, slab: np.ndarray) -> None:
        out[:, begin:begin + slab.shape[1]] = slab

    return write


def test_slices_are_written_once_no_later_window_reaches_them():
    out = np.zeros((1, 6, 2, 2), dtype=np.float32)
    unit_profiles = [np.ones(6), np.ones(2), np.ones(2)]  # separable weights summing to 1: sums are written as is
    stream = ZStream(out.shape, 4, torch.device("cpu"), False, SlabNormaliser(1, None, unit_profiles), _into(out))
    ones = torch.ones(4, 2, 2)
    stream.add((slice(0, 4), *WHOLE_PLANE), torch.full((1, 4, 2, 2), 1.0), ones)
    assert (out == 0).all()  # nothing is finished while the buffer's first slices can still be reached
    stream.add((slice(2, 6), *WHOLE_PLANE), torch.full((1, 4, 2, 2), 2.0), ones)
    np.testing.assert_array_equal(out[0, :2], 1.0)
    assert (out[0, 2:] == 0).all()
    stream.close()
    np.testing.assert_array_equal(out[0, :, 0, 0], [1, 1, 3, 3, 2, 2])


def test_weight_slabs_divide_and_leave_slices_no_window_reached_at_zero():
    out = np.zeros((2, 9, 2, 2), dtype=np.float16)
    normalise = SlabNormaliser(2, output_kind_for_activation("softmax"), None)
    stream = ZStream(out.shape, 3, torch.device("cpu"), True, normalise, _into(out))
    weights = torch.full((3, 2, 2), 0.5)
    logits = torch.stack([torch.zeros(3, 2, 2), torch.full((3, 2, 2), np.log(3.0))])
    stream.add((slice(0, 3), *WHOLE_PLANE), logits * 2, weights)  # two passes summed, as mirrorings would be
    stream.add((slice(6, 9), *WHOLE_PLANE), logits * 2, weights)  # slices 3-5: skipped windows
    stream.close()
    np.testing.assert_allclose(out[:, [0, 1, 2, 6, 7, 8]].astype(np.float32)[:, :, 0, 0],
                               [[0.25] * 6, [0.75] * 6], atol=1e-3)
    assert (out[:, 3:6] == 0).all() and out.dtype == np.float16
