"""Building blocks of the U-Nets: conv-norm-activation and the residual basic block.

Every block takes its operators (``conv_op``, ``norm_op``, ``nonlin``) as arguments, so the same
code builds 2D and 3D networks. Modules whose output counts as a stored feature map for the
memory estimate carry ``counts_feature_map = True``; ``autolung.network.estimate`` mirrors
exactly those modules, and the tests compare both with forward hooks.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

NORM_EPS = 1e-5
LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class Ops:
    """The operators for one dimensionality.

    Attributes:
        conv: ``nn.Conv2d`` or ``nn.Conv3d``.
        norm: ``nn.InstanceNorm2d`` or ``nn.InstanceNorm3d``.
        transposed_conv: ``nn.ConvTranspose2d`` or ``nn.ConvTranspose3d``.
        avg_pool: ``nn.AvgPool2d`` or ``nn.AvgPool3d`` (residual shortcuts).
        nonlin: the activation class (``nn.LeakyReLU``).
    """

    conv: type[nn.Module]
    norm: type[nn.Module]
    transposed_conv: type[nn.Module]
    avg_pool: type[nn.Module]
    nonlin: type[nn.Module] = nn.LeakyReLU


def ops_for_dim(dim: int) -> Ops:
    """The operator set for 2D or 3D networks.

    Args:
        dim: 2 or 3.

    Returns:
        The matching :class:`Ops`.
    """
    if dim == 2:
        return Ops(nn.Conv2d, nn.InstanceNorm2d, nn.ConvTranspose2d, nn.AvgPool2d)
    if dim == 3:
        return Ops(nn.Conv3d, nn.InstanceNorm3d, nn.ConvTranspose3d, nn.AvgPool3d)
    raise ValueError(f"dim must be 2 or 3, got {dim}")


def _padding(kernel: Sequence[int]) -> list[int]:
    # 'same' padding for odd kernels, also with strides (output = ceil(input / stride)).
    return [k // 2 for k in kernel]


class ConvNormAct(nn.Module):
    """Convolution, instance norm (affine, eps 1e-5), then LeakyReLU(0.01) unless ``activate`` is False.

    Args:
        ops: operator set for the dimensionality.
        in_channels: input channels.
        out_channels: output channels.
        kernel: kernel size per axis (odd).
        stride: stride per axis.
        activate: apply the nonlinearity (False for the second conv of a residual block).
    """

    counts_feature_map = True

    def __init__(self, ops: Ops, in_channels: int, out_channels: int, kernel: Sequence[int],
                 stride: Sequence[int], activate: bool = True) -> None:
        super().__init__()
        self.conv = ops.conv(in_channels, out_channels, kernel_size=tuple(kernel), stride=tuple(stride),
                             padding=tuple(_padding(kernel)), bias=True)
        self.norm = ops.norm(out_channels, eps=NORM_EPS, affine=True)
        self.act = ops.nonlin(negative_slope=LEAKY_SLOPE, inplace=True) if activate else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class Shortcut(nn.Module):
    """Projection shortcut of a residual block: average pooling (if strided), 1x1 conv, norm.

    Pooling before the 1x1 conv (the "ResNet-D" variant) keeps every input voxel contributing.
    """

    counts_feature_map = True

    def __init__(self, ops: Ops, in_channels: int, out_channels: int, stride: Sequence[int]) -> None:
        super().__init__()
        strided = any(s != 1 for s in stride)
        self.pool = (ops.avg_pool(kernel_size=tuple(stride), stride=tuple(stride), ceil_mode=True)
                     if strided else nn.Identity())
        self.conv = ops.conv(in_channels, out_channels, kernel_size=1, stride=1, bias=False)
        self.norm = ops.norm(out_channels, eps=NORM_EPS, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self.pool(x)))


class ResidualBlock(nn.Module):
    """Basic residual block: conv-norm-act, conv-norm, add the shortcut, act.

    Args:
        ops: operator set for the dimensionality.
        in_channels: input channels.
        out_channels: output channels.
        kernel: kernel size per axis for both convs.
        stride: stride of the first conv and of the shortcut.
    """

    def __init__(self, ops: Ops, in_channels: int, out_channels: int, kernel: Sequence[int],
                 stride: Sequence[int]) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(ops, in_channels, out_channels, kernel, stride)
        self.conv2 = ConvNormAct(ops, out_channels, out_channels, kernel, [1] * len(kernel), activate=False)
        needs_projection = in_channels != out_channels or any(s != 1 for s in stride)
        self.shortcut = Shortcut(ops, in_channels, out_channels, stride) if needs_projection else nn.Identity()
        self.act = ops.nonlin(negative_slope=LEAKY_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class SegmentationHead(nn.Module):
    """1x1 convolution to the output channels (logits)."""

    counts_feature_map = True

    def __init__(self, ops: Ops, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ops.conv(in_channels, out_channels, kernel_size=1, stride=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UpConv(nn.Module):
    """Transposed convolution with kernel == stride (learned upsampling without overlap)."""

    counts_feature_map = True

    def __init__(self, ops: Ops, in_channels: int, out_channels: int, stride: Sequence[int]) -> None:
        super().__init__()
        self.conv = ops.transposed_conv(in_channels, out_channels, kernel_size=tuple(stride),
                                        stride=tuple(stride), bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
