"""The U-Net (plain or residual encoder) described by an :class:`ArchitecturePlan`.

Encoder stages downsample with a strided first convolution; the decoder upsamples with
transposed convolutions (kernel == stride), concatenates the skip, and convolves. One 1x1 head
per decoder resolution gives deep supervision. Control flow depends only on module attributes,
never on tensor values, so the network traces cleanly under ``torch.compile``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from autolung.network.blocks import ConvNormAct, Ops, ResidualBlock, SegmentationHead, UpConv
from autolung.planning.plans import ArchitecturePlan


def _plain_stage(ops: Ops, in_channels: int, out_channels: int, kernel: Sequence[int], stride: Sequence[int],
                 num_convs: int) -> nn.Sequential:
    ones = [1] * len(kernel)
    layers = [ConvNormAct(ops, in_channels, out_channels, kernel, stride)]
    layers += [ConvNormAct(ops, out_channels, out_channels, kernel, ones) for _ in range(num_convs - 1)]
    return nn.Sequential(*layers)


def _residual_stage(ops: Ops, in_channels: int, out_channels: int, kernel: Sequence[int], stride: Sequence[int],
                    num_blocks: int) -> nn.Sequential:
    ones = [1] * len(kernel)
    layers = [ResidualBlock(ops, in_channels, out_channels, kernel, stride)]
    layers += [ResidualBlock(ops, out_channels, out_channels, kernel, ones) for _ in range(num_blocks - 1)]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Encoder returning the output of every stage (the skips; the last is the bottleneck).

    Args:
        arch: the topology.
        in_channels: image channels.
        ops: operator set.
    """

    def __init__(self, arch: ArchitecturePlan, in_channels: int, ops: Ops) -> None:
        super().__init__()
        residual = arch.network == "resenc_unet"
        features = arch.features_per_stage
        # The residual encoder first lifts the input to stage-0 width with one plain conv (the "stem"),
        # so that every residual block adds tensors of equal width.
        self.stem = (ConvNormAct(ops, in_channels, features[0], arch.kernel_sizes[0], [1] * arch.dim)
                     if residual else nn.Identity())
        previous = features[0] if residual else in_channels
        stages = []
        for stage, width in enumerate(features):
            make = _residual_stage if residual else _plain_stage
            stages.append(make(ops, previous, width, arch.kernel_sizes[stage], arch.strides[stage],
                               arch.blocks_per_stage[stage]))
            previous = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class Decoder(nn.Module):
    """Decoder with one segmentation head per resolution (all but the bottleneck).

    Args:
        arch: the topology.
        out_channels: output (region) channels.
        ops: operator set.
    """

    def __init__(self, arch: ArchitecturePlan, out_channels: int, ops: Ops) -> None:
        super().__init__()
        features = arch.features_per_stage
        n = arch.num_stages
        ups, blocks, heads = [], [], []
        for step in range(n - 1):
            level = n - 2 - step  # encoder stage whose skip this decoder step consumes
            ups.append(UpConv(ops, features[level + 1], features[level], arch.strides[level + 1]))
            blocks.append(_plain_stage(ops, 2 * features[level], features[level], arch.kernel_sizes[level],
                                       [1] * arch.dim, arch.decoder_convs_per_stage[step]))
            heads.append(SegmentationHead(ops, features[level], out_channels))
        self.ups = nn.ModuleList(ups)
        self.blocks = nn.ModuleList(blocks)
        self.heads = nn.ModuleList(heads)

    def forward(self, skips: list[torch.Tensor], all_heads: bool) -> list[torch.Tensor]:
        """Decode; returns the logits highest resolution first (one entry unless ``all_heads``)."""
        x = skips[-1]
        outputs = []
        last = len(self.ups) - 1
        for step, (up, block, head) in enumerate(zip(self.ups, self.blocks, self.heads)):
            x = up(x)
            x = torch.cat((x, skips[-(step + 2)]), dim=1)
            x = block(x)
            if all_heads or step == last:
                outputs.append(head(x))
        return outputs[::-1]


class UNet(nn.Module):
    """U-Net for 2D or 3D patches, plain or with a residual encoder.

    ``forward`` returns a list of logits (highest resolution first, one per decoder resolution)
    when ``deep_supervision`` is True and the module is in training mode, otherwise a single
    tensor at full resolution. Set ``net.deep_supervision`` to switch.

    Args:
        arch: the topology from the plans.
        in_channels: image channels.
        out_channels: output channels (one per region).
        ops: operator set for ``arch.dim``.
        deep_supervision: return all heads in training.
    """

    def __init__(self, arch: ArchitecturePlan, in_channels: int, out_channels: int, ops: Ops,
                 deep_supervision: bool = True) -> None:
        super().__init__()
        self.arch = arch
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.deep_supervision = deep_supervision
        self.encoder = Encoder(arch, in_channels, ops)
        self.decoder = Decoder(arch, out_channels, ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        all_heads = self.deep_supervision and self.training
        outputs = self.decoder(self.encoder(x), all_heads)
        return outputs if all_heads else outputs[0]

    def parameter_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def feature_map_elements(self, patch_size: Sequence[int]) -> int:
        """Stored feature-map elements of one sample of ``patch_size`` in training mode.

        Args:
            patch_size: spatial patch size (z, y, x) or (y, x).

        Returns:
            The same count as :func:`autolung.network.estimate.estimate_feature_map_elements`.
        """
        from autolung.network.estimate import estimate_feature_map_elements

        return estimate_feature_map_elements(self.arch, patch_size, out_channels=self.out_channels,
                                             deep_supervision=self.deep_supervision)
