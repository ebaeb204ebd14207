"""Sliding window: exact tiling, padding, mirroring, fold averaging, 2D per slice."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from autolung.inference.sliding_window import predict_sliding_window
from autolung.inference.window_grid import window_starts


def pointwise_net(in_channels=1, out_channels=2, dim=3, seed=0) -> nn.Module:
    torch.manual_seed(seed)
    conv = nn.Conv3d if dim == 3 else nn.Conv2d
    return conv(in_channels, out_channels, 1)


def conv_net(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(1, 3, 3, padding=1), nn.LeakyReLU(), nn.Conv3d(3, 2, 3, padding=1))


def direct(net: nn.Module, data: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(net(torch.from_numpy(data)[None]))[0].numpy()


def test_pointwise_network_is_reproduced_exactly_by_tiling():
    data = np.random.default_rng(0).normal(size=(1, 11, 37, 29)).astype(np.float32)
    net = pointwise_net()
    out = predict_sliding_window([net], data, (8, 16, 16), step_size=0.5, mirror_axes=None, window_batch_size=3)
    assert out.shape == (2, 11, 37, 29) and out.dtype == np.float32
    np.testing.assert_allclose(out, direct(net, data), atol=1e-5)


def test_input_smaller_than_patch_is_padded_and_cropped_back():
    data = np.random.default_rng(1).normal(size=(1, 3, 7, 5)).astype(np.float32)
    net = pointwise_net()
    out = predict_sliding_window(net, data, (8, 16, 16))
    assert out.shape == (2, 3, 7, 5)
    np.testing.assert_allclose(out, direct(net, data), atol=1e-5)


def test_mirroring_makes_prediction_flip_equivariant():
    data = np.random.default_rng(2).normal(size=(1, 16, 24, 24)).astype(np.float32)
    net = conv_net()
    out = predict_sliding_window(net, data, (8, 16, 16))
    flipped = predict_sliding_window(net, np.ascontiguousarray(data[:, ::-1, :, ::-1]), (8, 16, 16))
    np.testing.assert_allclose(flipped, out[:, ::-1, :, ::-1], atol=1e-5)
    no_tta = predict_sliding_window(net, data, (8, 16, 16), mirror_axes=None)
    assert not np.allclose(no_tta, out, atol=1e-4)  # the net itself is not symmetric


def test_fold_average_equals_mean_of_folds():
    data = np.random.default_rng(3).normal(size=(1, 10, 20, 20)).astype(np.float32)
    nets = [conv_net(seed) for seed in (0, 1, 2)]
    together = predict_sliding_window(nets, data, (8, 16, 16), mirror_axes=(2,))
    separate = [predict_sliding_window(n, data, (8, 16, 16), mirror_axes=(2,)) for n in nets]
    np.testing.assert_allclose(together, np.mean(separate, axis=0), atol=1e-6)


def test_2d_configuration_runs_slice_by_slice():
    data = np.random.default_rng(4).normal(size=(2, 5, 20, 18)).astype(np.float32)
    net = pointwise_net(in_channels=2, out_channels=3, dim=2)
    out = predict_sliding_window(net, data, (16, 16), window_batch_size=4)
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(data).permute(1, 0, 2, 3))).permute(1, 0, 2, 3).numpy()
    assert out.shape == (3, 5, 20, 18)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_bfloat16_autocast_is_close_to_float32():
    data = np.random.default_rng(5).normal(size=(1, 8, 16, 16)).astype(np.float32)
    net = conv_net()
    full = predict_sliding_window(net, data, (8, 16, 16), mirror_axes=None)
    half = predict_sliding_window(net, data, (8, 16, 16), mirror_axes=None, precision="bfloat16")
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, full, atol=2e-2)


def test_precision_choice():
    from autolung.inference.sliding_window import resolve_precision

    assert resolve_precision("float32", "cpu") == "float32"
    assert resolve_precision("auto", "cpu") in ("float32", "bfloat16")
    with pytest.raises(ValueError):
        resolve_precision("float16", "cpu")


def test_samples_per_call_follow_the_networks_feature_maps():
    from autolung.inference.sliding_window import CALL_FEATURE_BYTES, samples_per_call

    class Reporting(nn.Module):
        def __init__(self, elements: int) -> None:
            super().__init__()
            self.elements = elements

        def feature_map_elements(self, patch):
            assert list(patch) == [8, 16, 16]
            return self.elements

    small, large = Reporting(CALL_FEATURE_BYTES // 8), Reporting(CALL_FEATURE_BYTES // 8 + 1)
    assert samples_per_call(small, (8, 16, 16), "float32") == 2  # 2 samples x 4 bytes: exactly the bound
    assert samples_per_call(large, (8, 16, 16), "float32") == 1
    assert samples_per_call(large, (8, 16, 16), "bfloat16") == 2
    assert samples_per_call(conv_net(), (8, 16, 16), "float32") == 2  # reports nothing


def test_one_sample_per_call_for_large_windows_gives_the_same_probabilities(monkeypatch):
    from autolung.inference import sliding_window

    calls = []

    class Recording(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = conv_net()

        def feature_map_elements(self, patch):
            return CALL_BYTES_FOR_ONE

        def forward(self, x):
            calls.append(x.shape[0])
            return self.inner(x)

    CALL_BYTES_FOR_ONE = sliding_window.CALL_FEATURE_BYTES  # 2 samples would exceed the bound
    data = np.random.default_rng(8).normal(size=(1, 12, 24, 24)).astype(np.float32)
    single = predict_sliding_window(Recording(), data, (8, 16, 16), mirror_axes=(2,), precision="float32")
    assert set(calls) == {1}
    paired = predict_sliding_window(conv_net(), data, (8, 16, 16), mirror_axes=(2,), precision="float32")
    np.testing.assert_allclose(single, paired, atol=1e-5)


def test_window_batch_default_never_changes_the_result(monkeypatch):
    from autolung.inference import sliding_window

    sizes = []
    original = sliding_window._batches
    monkeypatch.setattr(sliding_window, "_batches", lambda items, size: sizes.append(size) or original(items, size))
    data = np.random.default_rng(6).normal(size=(1, 12, 24, 24)).astype(np.float32)
    net = conv_net()
    default = predict_sliding_window(net, data, (8, 16, 16), mirror_axes=None, precision="float32")
    batched = predict_sliding_window(net, data, (8, 16, 16), mirror_axes=None, precision="float32",
                                     window_batch_size=3)
    assert sizes == [2, 3]
    np.testing.assert_allclose(default, batched, atol=1e-5)


def test_mirrorings_share_network_calls_of_at_least_two_samples() -> None:
    """One window and eight mirrorings: four calls of two samples, the same sum as eight calls of one."""
    from autolung.inference import sliding_window

    assert sliding_window._flip_groups([(), (2,), (3,)], windows=1, call_samples=2) == [[(), (2,)], [(3,)]]
    assert sliding_window._flip_groups([(), (2,)], windows=2, call_samples=2) == [[()], [(2,)]]
    assert sliding_window._flip_groups([(), (2,)], windows=1, call_samples=1) == [[()], [(2,)]]
    calls = []

    class Recording(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = conv_net()

        def forward(self, x):
            calls.append(x.shape[0])
            return self.inner(x)

    net = Recording()
    batch = torch.from_numpy(np.random.default_rng(7).normal(size=(1, 1, 8, 16, 16)).astype(np.float32))
    flips = sliding_window.mirror_combinations((0, 1, 2), is_2d=False)
    with torch.inference_mode():
        grouped = sliding_window._predict_batch([net], batch, flips, "float32")
        assert calls == [2, 2, 2, 2]
        one_by_one = sum(torch.flip(torch.sigmoid(net.inner(torch.flip(batch, d) if d else batch)), d) if d
                         else torch.sigmoid(net.inner(batch)) for d in flips)
    np.testing.assert_allclose(grouped.numpy(), one_by_one.numpy(), atol=1e-5)


def whole_volume_sums(network: nn.Module, data: np.ndarray, patch, step: float, weights: str,
                      average_logits: bool, activation: str) -> np.ndarray:
    """The plain algorithm the Z stream replaces: whole-volume sums and weight sums, divided once."""
    from autolung.inference.sliding_window import _predict_batch, mirror_combinations
    from autolung.inference.window_grid import window_weights
    from autolung.output_kind import output_kind_for_activation

    is_2d = len(patch) == 2
    patch3 = (1, *patch) if is_2d else tuple(patch)
    flips = mirror_combinations((0, 1, 2), is_2d)
    gaussian = torch.from_numpy(window_weights(patch3, weights))
    tensor = torch.from_numpy(data)
    sums = weight_sums = None
    with torch.inference_mode():
        for window in window_starts(data.shape[1:], patch3, step):
            batch = tensor[(slice(None), *window)][None]
            outputs = _predict_batch([network], batch[:, :, 0] if is_2d else batch, flips, "float32", average_logits)
            outputs = outputs[:, :, None] if is_2d else outputs
            if sums is None:
                sums, weight_sums = torch.zeros((outputs.shape[1], *data.shape[1:])), torch.zeros(data.shape[1:])
            sums[(slice(None), *window)] += outputs[0] * gaussian
            weight_sums[window] += gaussian * len(flips)
        result = sums / weight_sums
        if average_logits:
            result = output_kind_for_activation(activation).probabilities(result, channel_axis=0)
    return result.numpy()


@pytest.mark.parametrize("shape,patch,weights,average_logits,activation", [
    ((23, 20, 18), (8, 12, 12), "autolung", False, "sigmoid"),
    ((23, 20, 18), (6, 12, 10), "nnunet", True, "softmax"),
    ((17, 19, 21), (7, 9, 11), "nnunet", True, "sigmoid"),
    ((6, 20, 18), (12, 12), "autolung", False, "sigmoid"),
])
def test_streamed_slabs_equal_whole_volume_sums(shape, patch, weights, average_logits, activation):
    network = pointwise_net(dim=len(patch)) if len(patch) == 2 else conv_net()
    data = np.random.default_rng(1).normal(size=(1, *shape)).astype(np.float32)
    streamed = predict_sliding_window(network, data, patch, step_size=0.5, weights=weights,
                                      average_logits=average_logits, output_activation=activation)
    expected = whole_volume_sums(network, data, patch, 0.5, weights, average_logits, activation)
    assert streamed.shape == expected.shape and streamed.dtype == np.float32
    np.testing.assert_allclose(streamed, expected, atol=2e-6)


def test_float16_probabilities_round_float32_ones_only():
    data = np.random.default_rng(2).normal(size=(1, 19, 30, 26)).astype(np.float32)
    full = predict_sliding_window(conv_net(), data, (8, 16, 16))
    half = predict_sliding_window(conv_net(), data, (8, 16, 16), probability_dtype="float16")
    assert half.dtype == np.float16 and half.shape == full.shape
    assert np.abs(half.astype(np.float32) - full).max() <= 2.5e-4
    with pytest.raises(ValueError, match="probability_dtype"):
        predict_sliding_window(conv_net(), data, (8, 16, 16), probability_dtype="int8")


def test_probabilities_turn_float16_only_for_large_cases():
    from autolung.inference.case_prediction import probability_dtype_for

    assert probability_dtype_for(2, (600, 512, 512)) == "float16"
    assert probability_dtype_for(2, (40, 128, 128)) == "float32"
    assert probability_dtype_for(1, (256, 512, 512)) == "float16"  # exactly 256 MiB in float32
    assert probability_dtype_for(1, (255, 512, 512)) == "float32"


def test_bfloat16_input_predicts_exactly_as_float32_data_in_bfloat16():
    from autolung.inference.sliding_window import window_input

    data = np.random.default_rng(3).normal(size=(1, 12, 24, 24)).astype(np.float32)
    compact = window_input(data, "bfloat16")
    assert compact.dtype == torch.bfloat16 and window_input(data, "float32").dtype == torch.float32
    expected = predict_sliding_window(conv_net(), data, (8, 16, 16), precision="bfloat16", mirror_axes=(2,))
    result = predict_sliding_window(conv_net(), compact, (8, 16, 16), precision="bfloat16", mirror_axes=(2,))
    np.testing.assert_array_equal(result, expected)
    with pytest.raises(ValueError, match="bfloat16 precision"):
        predict_sliding_window(conv_net(), compact, (8, 16, 16), precision="float32")


def test_bfloat16_3d_networks_run_channels_last_on_a_cpu_with_the_same_probabilities(monkeypatch):
    import autolung.inference.sliding_window as sw

    cpu = torch.device("cpu")
    assert sw.memory_format_for("bfloat16", cpu, is_2d=False) == torch.channels_last_3d
    assert sw.memory_format_for("float32", cpu, is_2d=False) == torch.contiguous_format
    assert sw.memory_format_for("bfloat16", cpu, is_2d=True) == torch.contiguous_format
    assert sw.memory_format_for("bfloat16", torch.device("cuda"), is_2d=False) == torch.contiguous_format
    network = conv_net()
    data = np.random.default_rng(4).normal(size=(1, 14, 20, 18)).astype(np.float32)
    channels_last = predict_sliding_window(network, data, (8, 12, 12), precision="bfloat16")
    assert network[2].weight.is_contiguous(memory_format=torch.channels_last_3d)
    monkeypatch.setattr(sw, "memory_format_for", lambda *args: torch.contiguous_format)
    contiguous = predict_sliding_window(network, data, (8, 12, 12), precision="bfloat16")
    assert network[2].weight.is_contiguous()
    np.testing.assert_allclose(channels_last, contiguous, atol=2e-2)
