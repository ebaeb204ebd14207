from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autolung.labels import RegionMapping
from autolung.training.data.targets import downsample_targets, make_targets
from autolung.training.loss import (
    CEDiceLoss,
    DeepSupervisionLoss,
    RegionBCEDiceLoss,
    deep_supervision_weights,
    output_channels,
    soft_dice,
)


def test_bce_dice_of_zero_logits_matches_hand_computation():
    target = torch.zeros(1, 1, 4)
    target[0, 0, :1] = 1  # one of four voxels is foreground
    loss = RegionBCEDiceLoss()(torch.zeros(1, 1, 4), target)
    # BCE of p=0.5 is ln 2; soft Dice = 2 * 0.5 / (4 * 0.5 + 1) = 1/3.
    expected_dice = (2 * 0.5 + 1e-5) / (2.0 + 1.0 + 1e-5)
    assert float(loss) == pytest.approx(math.log(2) + 1 - expected_dice, rel=1e-5)


def test_bce_dice_near_zero_for_confident_correct_prediction():
    target = torch.tensor([[[1.0, 0.0, 1.0, 0.0]]])
    logits = (target * 2 - 1) * 30
    assert float(RegionBCEDiceLoss()(logits, target)) < 1e-6


def test_soft_dice_empty_channel_scores_one():
    dice = soft_dice(torch.zeros(2, 1, 3), torch.zeros(2, 1, 3))
    assert float(dice[0]) == pytest.approx(1.0)


def test_ce_dice_hand_case():
    # Two classes (background, label), two voxels: uniform logits.
    logits = torch.zeros(1, 2, 2)
    target = torch.tensor([[[0, 1]]], dtype=torch.uint8)
    loss = CEDiceLoss()(logits, target)
    dice = (2 * 0.5 + 1e-5) / (1.0 + 1.0 + 1e-5)
    assert float(loss) == pytest.approx(math.log(2) + 1 - dice, rel=1e-5)
    perfect = torch.tensor([[[30.0, -30.0], [-30.0, 30.0]]])
    assert float(CEDiceLoss()(perfect, target)) < 1e-6


def test_deep_supervision_weights():
    assert deep_supervision_weights(1) == [1.0]
    assert deep_supervision_weights(3) == pytest.approx([2 / 3, 1 / 3, 0.0])
    weights = deep_supervision_weights(5)
    assert weights[-1] == 0 and sum(weights) == pytest.approx(1)
    assert weights[1] == pytest.approx(weights[0] / 2)


def test_deep_supervision_off_weights_the_full_resolution_output_alone():
    assert deep_supervision_weights(4, enabled=False) == [1.0, 0.0, 0.0, 0.0]
    torch.manual_seed(0)
    outputs = [torch.randn(2, 2, 8, 8, requires_grad=True), torch.randn(2, 2, 4, 4, requires_grad=True)]
    targets = [(torch.rand(o.shape) > 0.5).float() for o in outputs]
    base = RegionBCEDiceLoss()
    total = DeepSupervisionLoss(base, deep_supervision=False)(outputs, targets)
    assert float(total.detach()) == pytest.approx(float(base(outputs[0], targets[0]).detach()), rel=1e-6)
    total.backward()
    assert outputs[1].grad is not None and float(outputs[1].grad.abs().max()) == 0.0


def test_deep_supervision_loss_is_weighted_sum():
    torch.manual_seed(0)
    outputs = [torch.randn(2, 2, 8, 8), torch.randn(2, 2, 4, 4), torch.randn(2, 2, 2, 2)]
    targets = [(torch.rand(o.shape) > 0.5).float() for o in outputs]
    base = RegionBCEDiceLoss()
    total = DeepSupervisionLoss(base)(outputs, targets)
    expected = 2 / 3 * base(outputs[0], targets[0]) + 1 / 3 * base(outputs[1], targets[1])
    assert float(total) == pytest.approx(float(expected), rel=1e-6)


def test_targets_regions_and_classes():
    regions = RegionMapping.one_per_label([1, 2])
    seg = np.array([[[0, 1, 2, -1]]], dtype=np.int8)[:, None]  # (B=1, 1, 1, 4)
    region_targets = make_targets(seg, regions, "bce_dice")
    assert region_targets.shape == (1, 2, 1, 4)
    assert region_targets[0, :, 0].tolist() == [[0, 1, 0, 0], [0, 0, 1, 0]]
    classes = make_targets(seg, regions, "ce_dice")
    assert classes[0, 0, 0].tolist() == [0, 1, 2, 0]
    nested = RegionMapping(regions=((1, 2), (2,)), paint_labels=(1, 2))
    assert make_targets(seg, nested, "bce_dice")[0, :, 0].tolist() == [[0, 1, 1, 0], [0, 0, 1, 0]]
    with pytest.raises(Exception, match="disjoint"):
        output_channels("ce_dice", nested)
    assert output_channels("ce_dice", regions) == 3


def test_downsample_targets_nearest():
    target = torch.arange(16).reshape(1, 1, 4, 4)
    full, half, quarter = downsample_targets(target, [(4, 4), (2, 2), (1, 1)])
    assert torch.equal(full, target)
    assert half[0, 0].tolist() == [[5, 7], [13, 15]]
    assert quarter.shape == (1, 1, 1, 1)


def test_channels_back_to_labels():
    disjoint = RegionMapping.one_per_label([1, 2])
    probabilities = np.array([[0.9, 0.2, 0.6], [0.1, 0.7, 0.8]], dtype=np.float32)
    assert disjoint.probabilities_to_labels(probabilities).tolist() == [1, 2, 2]
    nested = RegionMapping(regions=((1, 2), (2,)), paint_labels=(1, 2))
    assert nested.probabilities_to_labels(probabilities).tolist() == [1, 2, 2]
    assert nested.probabilities_to_labels(np.array([[0.9], [0.4]], dtype=np.float32)).tolist() == [1]


def test_softmax_network_looks_like_sigmoid_regions_to_the_predictor():
    from autolung.inference.model import SoftmaxAsSigmoidLogits

    logits = torch.randn(2, 3, 4, 4)
    wrapped = SoftmaxAsSigmoidLogits(torch.nn.Identity())
    assert torch.allclose(torch.sigmoid(wrapped(logits)), torch.softmax(logits, 1)[:, 1:], atol=1e-5)


def test_pseudo_dice_counts_for_both_losses():
    from autolung.training.trainer import pseudo_dice_counts

    target = torch.tensor([[[1, 1, 0, 0]]], dtype=torch.uint8)  # (B=1, R=1, 4)
    logits = torch.tensor([[[5.0, -5.0, 5.0, -5.0]]])
    tp, fp, fn = pseudo_dice_counts(logits, target, "bce_dice")
    assert (tp.tolist(), fp.tolist(), fn.tolist()) == ([1.0], [1.0], [1.0])
    classes = torch.tensor([[[1, 1, 0, 0]]], dtype=torch.uint8)  # class map (B, 1, 4)
    softmax_logits = torch.tensor([[[0.0, 9.0, 0.0, 9.0], [9.0, 0.0, 9.0, 0.0]]])
    tp, fp, fn = pseudo_dice_counts(softmax_logits, classes, "ce_dice")
    assert (tp.tolist(), fp.tolist(), fn.tolist()) == ([1.0], [1.0], [1.0])
