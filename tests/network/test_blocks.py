"""Blocks that keep channels-last inputs channels-last compute what PyTorch's own layers compute."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from autolung.network import build_network
from autolung.network.blocks import AvgPool3d, InstanceNorm3d
from autolung.planning.plans import ArchitecturePlan

CL = torch.channels_last_3d


def test_instance_norm_of_a_channels_last_input_stays_channels_last_and_equal() -> None:
    torch.manual_seed(0)
    ours, plain = InstanceNorm3d(6, affine=True), nn.InstanceNorm3d(6, affine=True)
    with torch.no_grad():
        for norm in (ours, plain):
            norm.weight.copy_(torch.linspace(0.5, 2, 6))
            norm.bias.copy_(torch.linspace(-1, 1, 6))
    x = torch.randn(2, 6, 5, 7, 9) * 3 + 1
    expected = plain(x)
    out = ours(x.contiguous(memory_format=CL))
    assert out.is_contiguous(memory_format=CL) and not out.is_contiguous()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert ours(x).is_contiguous()  # the plain path for contiguous inputs (training)
    torch.testing.assert_close(ours(x), expected)
    assert set(ours.state_dict()) == set(plain.state_dict())


@pytest.mark.parametrize("shape,kernel", [((2, 8, 7, 9, 5), (1, 2, 2)), ((1, 4, 5, 7, 3), (2, 2, 2)),
                                          ((2, 3, 8, 8, 8), (2, 2, 2))])
def test_average_pooling_of_a_channels_last_input_counts_partial_windows_as_pytorch(shape, kernel) -> None:
    x = torch.randn(shape)
    expected = nn.AvgPool3d(kernel, kernel, ceil_mode=True)(x)
    out = AvgPool3d(kernel, kernel, ceil_mode=True)(x.contiguous(memory_format=CL))
    assert out.shape == expected.shape and out.is_contiguous(memory_format=CL)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("network", ["unet", "resenc_unet"])
def test_a_channels_last_network_predicts_what_the_contiguous_one_does(network: str) -> None:
    torch.manual_seed(1)
    arch = ArchitecturePlan(network, 3, [8, 16, 32], [[1, 1, 1], [1, 2, 2], [2, 2, 2]], [[3, 3, 3]] * 3,
                            [1, 2, 2], [1, 1])
    net = build_network(arch, 1, 2, deep_supervision=False).eval()
    x = torch.randn(2, 1, 4, 16, 12)
    with torch.no_grad():
        expected = net(x)
        out = net.to(memory_format=CL)(x.contiguous(memory_format=CL))
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
