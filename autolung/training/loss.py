"""Segmentation losses: BCE + soft Dice over sigmoid regions, CE + soft Dice over softmax classes,
and the deep-supervision wrapper that sums them over decoder resolutions.

Soft Dice is a "batch Dice": true positives, false positives and false negatives are summed over
the batch and all voxels before the ratio, which keeps small structures from dominating
(nnU-Net's default for its 3d and 2d configurations).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from autolung.labels import RegionMapping
from autolung.output_kind import OutputKind, as_output_kind, split_annotated

DICE_SMOOTH = 1e-5


def soft_dice(probabilities: torch.Tensor, targets: torch.Tensor, smooth: float = DICE_SMOOTH,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Batch soft Dice per channel.

    Args:
        probabilities: (B, C, *spatial) in [0, 1].
        targets: (B, C, *spatial) binary, same shape.
        smooth: added to numerator and denominator, so empty channels score 1.
        mask: optional (B, 1, *spatial) annotated-voxel mask; voxels outside it count nowhere.

    Returns:
        (C,) Dice per channel.
    """
    if mask is not None:
        probabilities = probabilities * mask
        targets = targets * mask
    axes = [0, *range(2, probabilities.ndim)]
    intersection = (probabilities * targets).sum(axes)
    total = probabilities.sum(axes) + targets.sum(axes)
    return (2 * intersection + smooth) / (total + smooth).clamp_min(1e-8)


class RegionBCEDiceLoss(nn.Module):
    """BCE with logits + (1 - mean soft Dice), one sigmoid channel per region.

    Args:
        bce_weight: weight of the BCE term.
        dice_weight: weight of the Dice term.
        has_ignore: targets carry an annotated-voxel mask as their last channel; unannotated
            voxels count in neither term (nnU-Net's ignore label).
    """

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0, has_ignore: bool = False) -> None:
        super().__init__()
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.has_ignore = has_ignore

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of (B, R, *spatial) logits against (B, R, *spatial) binary targets.

        Returns:
            Scalar loss (float32 whatever the logits' dtype).
        """
        logits = logits.float()
        targets, mask = split_annotated(targets.float(), self.has_ignore)
        if mask is None:
            bce = F.binary_cross_entropy_with_logits(logits, targets)
        else:
            voxelwise = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
            bce = (voxelwise * mask).sum() / (mask.sum() * logits.shape[1]).clamp_min(1.0)
        dice = soft_dice(torch.sigmoid(logits), targets, mask=mask).mean()
        return self.bce_weight * bce + self.dice_weight * (1 - dice)


class CEDiceLoss(nn.Module):
    """Cross-entropy + (1 - mean soft Dice over foreground classes), softmax over classes.

    Args:
        ce_weight: weight of the cross-entropy term.
        dice_weight: weight of the Dice term.
        has_ignore: targets carry an annotated-voxel mask as their last channel; unannotated
            voxels count in neither term.
    """

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0, has_ignore: bool = False) -> None:
        super().__init__()
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.has_ignore = has_ignore

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of (B, K, *spatial) logits (K = background + labels) against (B, 1, *spatial) class indices.

        Returns:
            Scalar loss.
        """
        logits = logits.float()
        targets, mask = split_annotated(targets, self.has_ignore)
        classes = targets[:, 0].long()
        if mask is None:
            ce = F.cross_entropy(logits, classes)
        else:
            voxelwise = F.cross_entropy(logits, classes, reduction="none")
            ce = (voxelwise * mask[:, 0].float()).sum() / mask.float().sum().clamp_min(1.0)
        one_hot = F.one_hot(classes, logits.shape[1]).movedim(-1, 1).float()
        dice = soft_dice(torch.softmax(logits, 1)[:, 1:], one_hot[:, 1:],
                         mask=None if mask is None else mask.float()).mean()
        return self.ce_weight * ce + self.dice_weight * (1 - dice)


def deep_supervision_weights(num_outputs: int, enabled: bool = True) -> list[float]:
    """Weights 1/2^i for outputs ordered highest resolution first; the lowest one gets 0; sum 1.

    Args:
        num_outputs: number of network outputs.
        enabled: False weights the full-resolution output alone (the other heads get 0).

    Returns:
        One weight per output.
    """
    if not enabled:
        return [1.0] + [0.0] * (num_outputs - 1)
    weights = [1.0 / 2 ** i for i in range(num_outputs)]
    if num_outputs > 1:
        # The coarsest head sees too little to be a useful target (nnU-Net leaves it out too).
        weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights]


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of ``loss`` over (output, target) pairs, highest resolution first.

    Args:
        loss: the per-resolution loss.
        deep_supervision: False trains on the full-resolution output alone (an ablation); the
            coarser heads stay in the graph with a zero weight.
    """

    def __init__(self, loss: nn.Module, deep_supervision: bool = True) -> None:
        super().__init__()
        self.loss = loss
        self.deep_supervision = deep_supervision

    def forward(self, outputs: Sequence[torch.Tensor] | torch.Tensor,
                targets: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Loss over all resolutions (a single tensor pair is accepted as one resolution).

        Returns:
            Scalar loss.
        """
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, targets if isinstance(targets, torch.Tensor) else targets[0])
        weights = deep_supervision_weights(len(outputs), self.deep_supervision)
        total = outputs[0].new_zeros((), dtype=torch.float32)
        for weight, output, target in zip(weights, outputs, targets):
            if weight > 0:
                total = total + weight * self.loss(output, target)
            else:
                # Keep the unweighted head in the graph with a zero gradient: DDP then needs no
                # per-iteration search for unused parameters.
                total = total + 0.0 * output.float().mean()
        return total


def build_loss(kind: OutputKind | str, has_ignore: bool = False, deep_supervision: bool = True) -> nn.Module:
    """The deep-supervised training loss of ``kind`` (:meth:`OutputKind.build_loss`).

    Args:
        kind: the output kind, or its loss name ("bce_dice" or "ce_dice").
        has_ignore: the dataset has an ignore label (targets carry an annotated-voxel channel).
        deep_supervision: False weights the full-resolution output alone.

    Returns:
        A :class:`DeepSupervisionLoss`.
    """
    return as_output_kind(kind).build_loss(has_ignore, deep_supervision)


def output_channels(kind: OutputKind | str, regions: RegionMapping) -> int:
    """Network output channels of ``kind`` (:meth:`OutputKind.output_channels`).

    Args:
        kind: the output kind, or its loss name.
        regions: the plans' region mapping.

    Returns:
        Channel count.
    """
    return as_output_kind(kind).output_channels(regions)
