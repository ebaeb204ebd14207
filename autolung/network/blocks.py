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
        norm: ``nn.InstanceNorm2d`` or :class:`InstanceNorm3d`.
        transposed_conv: ``nn.ConvTranspose2d`` or ``nn.ConvTranspose3d``.
        avg_pool: ``nn.AvgPool2d`` or :class:`AvgPool3d` (residual shortcuts).
        nonlin: the activation class (``nn.LeakyReLU``).
    """

    conv: type[nn.Module]
    norm: type[nn.Module]
    transposed_conv: type[nn.Module]
    avg_pool: type[nn.Module]
    nonlin: type[nn.Module] = nn.LeakyReLU


class InstanceNorm3d(nn.InstanceNorm3d):
    """``nn.InstanceNorm3d`` that keeps a channels-last input channels-last.

    PyTorch's instance norm hands back a contiguous tensor for a channels-last one, and on a CPU
    takes about 2.5x longer on it (docs/benchmarks.md, nnunet_models), so every following
    convolution would reorder its input again. Group norm with one group per channel computes
    the same statistics (per sample and channel, over space) and keeps the layout: it is used for
    channels-last inputs (bfloat16 prediction on a CPU), the plain instance norm for everything
    else, training included. Parameters and state-dict keys are those of ``nn.InstanceNorm3d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not self.track_running_stats and x.dim() == 5 and not x.is_contiguous()
                and x.is_contiguous(memory_format=torch.channels_last_3d)):
            return nn.functional.group_norm(x, self.num_features, self.weight, self.bias, self.eps)
        return super().forward(x)


class AvgPool3d(nn.AvgPool3d):
    """``nn.AvgPool3d`` (kernel = stride, no padding) that keeps a channels-last input channels-last.

    PyTorch's 3D average pooling on a CPU has no channels-last kernel (and none at all for
    bfloat16): on a channels-last input it returns a contiguous tensor, slowly (36 ms against
    1.5 ms for 2x32x40x56x40, docs/benchmarks.md). For channels-last inputs the same averages
    come from a depthwise convolution with a box kernel, in the input's precision, the last
    partial windows (``ceil_mode``) divided by the voxels they hold; other inputs, training
    included, take the plain pooling.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = _triple(self.kernel_size)
        if (x.dim() == 5 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d)
                and kernel == _triple(self.stride) and _triple(self.padding) == (0, 0, 0)):
            return _box_average(x, kernel, self.ceil_mode)
        return super().forward(x)


def _triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    return (value,) * 3 if isinstance(value, int) else tuple(int(v) for v in value)  # type: ignore[return-value]


def _box_average(x: torch.Tensor, kernel: tuple[int, int, int], ceil_mode: bool) -> torch.Tensor:
    """Non-overlapping box averages of a channels-last ``(N, C, Z, Y, X)`` tensor, channels-last."""
    sizes = x.shape[2:]
    tails = [(-n) % k if ceil_mode else 0 for n, k in zip(sizes, kernel)]
    if any(tails):
        x = nn.functional.pad(x, (0, tails[2], 0, tails[1], 0, tails[0])).contiguous(
            memory_format=torch.channels_last_3d)
    channels = x.shape[1]
    box = torch.ones((channels, 1, *kernel), dtype=x.dtype, device=x.device)
    with torch.autocast(x.device.type, enabled=False):
        sums = nn.functional.conv3d(x, box, stride=kernel, groups=channels)
    counts = torch.ones((), dtype=x.dtype, device=x.device)
    for axis, (n, k) in enumerate(zip(sizes, kernel)):
        per_window = torch.clamp(n - torch.arange(sums.shape[2 + axis], device=x.device) * k, max=k).to(x.dtype)
        counts = counts * per_window.view(*([1] * (2 + axis)), -1, *([1] * (2 - axis)))
    return sums / counts


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
        return Ops(nn.Conv3d, InstanceNorm3d, nn.ConvTranspose3d, AvgPool3d)
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
