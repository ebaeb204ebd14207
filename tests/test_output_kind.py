"""The output kind (sigmoid regions or softmax classes): one object, chosen once, asked by everyone."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from autolung.errors import AutolungError, InvalidInputError
from autolung.labels import RegionMapping
from autolung.output_kind import (
    ACTIVATIONS,
    AUTO_LOSS,
    LOSSES,
    OUTPUT_KINDS,
    RAW_LOGITS,
    SIGMOID_REGIONS,
    SOFTMAX_CLASSES,
    as_output_kind,
    default_output_kind,
    output_kind_for_activation,
    output_kind_from_training_info,
)
from autolung.training.loss import CEDiceLoss, DeepSupervisionLoss, RegionBCEDiceLoss

REPO = Path(__file__).resolve().parents[1]
TWO_LABELS = RegionMapping.one_per_label([1, 2])
NESTED = RegionMapping(regions=((1, 2), (2,)), paint_labels=(1, 2))


def test_kinds_are_chosen_by_loss_and_by_activation():
    assert as_output_kind("bce_dice") == SIGMOID_REGIONS and as_output_kind("ce_dice") == SOFTMAX_CLASSES
    assert as_output_kind(SOFTMAX_CLASSES) is SOFTMAX_CLASSES
    assert output_kind_for_activation("sigmoid") == SIGMOID_REGIONS
    assert output_kind_for_activation("softmax") == SOFTMAX_CLASSES
    assert LOSSES == ("bce_dice", "ce_dice") and ACTIVATIONS == ("sigmoid", "softmax")
    with pytest.raises(AutolungError, match="`loss` must be one of bce_dice, ce_dice, got 'focal'"):
        as_output_kind("focal")
    with pytest.raises(ValueError, match="unknown output_activation 'logits'"):
        output_kind_for_activation(RAW_LOGITS)


def test_kinds_compare_by_value_and_survive_pickling_into_workers():
    for kind in OUTPUT_KINDS:
        copy = pickle.loads(pickle.dumps(kind))
        assert copy == kind and hash(copy) == hash(kind)
    assert SIGMOID_REGIONS != SOFTMAX_CLASSES and repr(SOFTMAX_CLASSES) == "OutputKind('softmax_classes')"


def test_output_channels():
    assert SIGMOID_REGIONS.output_channels(TWO_LABELS) == 2
    assert SOFTMAX_CLASSES.output_channels(TWO_LABELS) == 3
    assert SIGMOID_REGIONS.output_channels(NESTED) == 2
    with pytest.raises(AutolungError, match="`loss` ce_dice needs disjoint labels"):
        SOFTMAX_CLASSES.output_channels(NESTED)


def test_targets_encode_regions_or_classes_and_append_the_annotated_channel():
    seg = np.array([[[0, 1, 2, -1, 0]]], dtype=np.int8)[:, None]  # (B=1, 1, 1, 5)
    regions = SIGMOID_REGIONS.targets(seg, TWO_LABELS)
    assert regions.dtype == np.uint8 and regions.shape == (1, 2, 1, 5)
    assert regions[0, :, 0].tolist() == [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0]]
    classes = SOFTMAX_CLASSES.targets(seg, TWO_LABELS)
    assert classes.dtype == np.uint8 and classes[0, :, 0].tolist() == [[0, 1, 2, 0, 0]]
    with_ignore = RegionMapping(((1,), (2,)), (1, 2), ignore_label=3)
    seg[..., 4] = 3
    # The ignored voxel becomes background in the targets, and 0 in the last (annotated) channel.
    assert SIGMOID_REGIONS.targets(seg, with_ignore)[0, :, 0].tolist() == [
        [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [1, 1, 1, 1, 0]]
    assert SOFTMAX_CLASSES.targets(seg, with_ignore)[0, :, 0].tolist() == [[0, 1, 2, 0, 0], [1, 1, 1, 1, 0]]


def test_probabilities_and_foreground_logits():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    assert torch.equal(SIGMOID_REGIONS.probabilities(logits), torch.sigmoid(logits))
    assert torch.equal(SOFTMAX_CLASSES.probabilities(logits), torch.softmax(logits, 1))
    assert torch.equal(SOFTMAX_CLASSES.probabilities(logits[0], channel_axis=0), torch.softmax(logits[0], 0))
    assert torch.allclose(SOFTMAX_CLASSES.probabilities(logits).sum(1), torch.ones(2, 4, 4))
    assert SIGMOID_REGIONS.foreground_logits(logits) is logits
    foreground = SOFTMAX_CLASSES.foreground_logits(logits)
    assert foreground.shape == (2, 2, 4, 4)
    assert torch.allclose(torch.sigmoid(foreground), torch.softmax(logits, 1)[:, 1:], atol=1e-6)
    # Certain voxels stay finite (clamped before the logit).
    assert torch.isfinite(SOFTMAX_CLASSES.foreground_logits(torch.tensor([[[200.0], [-200.0]]]))).all()


def test_prediction_network_gives_the_sliding_window_foreground_logits():
    network = torch.nn.Conv2d(1, 3, 1)
    assert SIGMOID_REGIONS.prediction_network(network) is network
    wrapped = SOFTMAX_CLASSES.prediction_network(network)
    assert not wrapped.training
    x = torch.randn(1, 1, 4, 4)
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(wrapped(x)), torch.softmax(network(x), 1)[:, 1:], atol=1e-6)


def test_label_map_follows_the_region_mapping():
    probabilities = np.array([[0.9, 0.2, 0.3], [0.1, 0.7, 0.4]], dtype=np.float32)
    for kind in OUTPUT_KINDS:
        labels = kind.label_map(probabilities, TWO_LABELS)
        assert labels.dtype == np.uint8 and labels.tolist() == [1, 2, 0]


def test_pseudo_dice_counts_hand_cases():
    regions_target = torch.tensor([[[1, 1, 0, 0]]], dtype=torch.uint8)  # (B=1, R=1, 4)
    logits = torch.tensor([[[5.0, -5.0, 5.0, -5.0]]])
    assert [t.tolist() for t in SIGMOID_REGIONS.pseudo_dice_counts(logits, regions_target)] == [[1.0], [1.0], [1.0]]
    classes = torch.tensor([[[2, 1, 0, 2]]], dtype=torch.uint8)  # class map (B=1, 1, 4)
    softmax_logits = torch.tensor([[[9.0, 0.0, 0.0, 0.0], [0.0, 9.0, 9.0, 0.0], [0.0, 0.0, 0.0, 9.0]]])
    tp, fp, fn = SOFTMAX_CLASSES.pseudo_dice_counts(softmax_logits, classes)
    assert (tp.tolist(), fp.tolist(), fn.tolist()) == ([1.0, 1.0], [1.0, 0.0], [0.0, 1.0])
    assert tp.dtype == torch.float64
    # With an ignore label the last target channel masks voxels out of every count.
    annotated = torch.tensor([[[1, 1, 1, 0]]], dtype=torch.uint8)
    tp, fp, fn = SOFTMAX_CLASSES.pseudo_dice_counts(softmax_logits, torch.cat([classes, annotated], 1),
                                                    has_ignore=True)
    assert (tp.tolist(), fp.tolist(), fn.tolist()) == ([1.0, 0.0], [1.0, 0.0], [0.0, 1.0])


def test_build_loss_matches_the_per_resolution_loss():
    torch.manual_seed(0)
    region_loss = SIGMOID_REGIONS.build_loss()
    class_loss = SOFTMAX_CLASSES.build_loss(has_ignore=True)
    assert isinstance(region_loss, DeepSupervisionLoss) and isinstance(region_loss.loss, RegionBCEDiceLoss)
    assert isinstance(class_loss.loss, CEDiceLoss) and class_loss.loss.has_ignore
    logits = torch.randn(2, 2, 8, 8)
    targets = (torch.rand(2, 2, 8, 8) > 0.5).float()
    assert float(region_loss(logits, targets)) == pytest.approx(float(RegionBCEDiceLoss()(logits, targets)))


def test_training_info_round_trip_and_earlier_files(tmp_path):
    path = tmp_path / "training_info.json"
    for kind in OUTPUT_KINDS:
        path.write_text(json.dumps({"configuration": "2d", **kind.training_info()}))
        assert output_kind_from_training_info(json.loads(path.read_text()), path) == kind
    assert SOFTMAX_CLASSES.training_info() == {"output_kind": "softmax_classes", "loss": "ce_dice",
                                               "output_activation": "softmax"}
    # Files written before ``output_kind`` existed: the activation, the loss, or neither.
    assert output_kind_from_training_info({"output_activation": "softmax"}) == SOFTMAX_CLASSES
    assert output_kind_from_training_info({"loss": "ce_dice", "output_activation": "softmax"}) == SOFTMAX_CLASSES
    assert output_kind_from_training_info({"loss": "ce_dice"}) == SOFTMAX_CLASSES
    assert output_kind_from_training_info({}) == SIGMOID_REGIONS
    assert output_kind_from_training_info({}, default=SOFTMAX_CLASSES) == SOFTMAX_CLASSES


def test_training_info_that_is_unknown_or_disagrees_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "training_info.json"
    with pytest.raises(InvalidInputError, match="unknown output_activation 'tanh'") as error:
        output_kind_from_training_info({"output_activation": "tanh"}, path)
    assert error.value.path == path
    with pytest.raises(InvalidInputError, match="unknown output_kind 'regions'"):
        output_kind_from_training_info({"output_kind": "regions"}, path)
    with pytest.raises(InvalidInputError, match="unknown output_activation 'logits'"):
        output_kind_from_training_info({"output_activation": RAW_LOGITS}, path)
    with pytest.raises(InvalidInputError, match="disagrees with itself: output_kind 'sigmoid_regions', loss 'ce_dice'"):
        output_kind_from_training_info({"output_kind": "sigmoid_regions", "loss": "ce_dice"}, path)


def test_plans_and_training_options_take_their_names_from_the_kinds():
    from autolung.planning.plans import OUTPUT_ACTIVATIONS
    from autolung.training.options import LOSSES as OPTION_LOSSES
    from autolung.training.options import TrainingOptions

    assert OUTPUT_ACTIVATIONS == ACTIVATIONS and OPTION_LOSSES == LOSSES
    assert TrainingOptions(loss="bce_dice").output_kind == SIGMOID_REGIONS
    assert TrainingOptions(loss="ce_dice").output_kind == SOFTMAX_CLASSES
    assert TrainingOptions().loss == AUTO_LOSS
    with pytest.raises(AutolungError, match="names no output kind until the dataset's labels choose one"):
        TrainingOptions().output_kind


def test_the_labels_choose_the_default_kind():
    assert default_output_kind(RegionMapping.one_per_label([1]))[0] == SIGMOID_REGIONS
    kind, reason = default_output_kind(TWO_LABELS)
    assert kind == SOFTMAX_CLASSES and "2 mutually exclusive labels" in reason
    assert default_output_kind(NESTED) == (SIGMOID_REGIONS, "nested regions, which only sigmoid regions express")


def test_training_resolves_auto_from_the_plans_or_the_fold_it_resumes(tmp_path, caplog):
    from types import SimpleNamespace

    from autolung.results import FoldFolder, TrainingInfo
    from autolung.training.options import TrainingOptions
    from autolung.training.run import with_resolved_loss

    folder = FoldFolder(tmp_path / "fold_0", 0)
    inputs = SimpleNamespace(plans=SimpleNamespace(region_mapping=TWO_LABELS), folder=folder)
    with caplog.at_level("INFO", logger="autolung.training.run"):
        assert with_resolved_loss(TrainingOptions(), inputs).loss == "ce_dice"
    assert "loss ce_dice (softmax_classes): 2 mutually exclusive labels" in caplog.text
    assert with_resolved_loss(TrainingOptions(loss="bce_dice"), inputs).loss == "bce_dice"  # given: kept
    folder.path.mkdir(parents=True)
    folder.write_training_info(TrainingInfo(configuration="2d", planner="auto", fold=0, plans_digest="x",
                                            in_channels=1, out_channels=2, autolung_version="0",
                                            **SIGMOID_REGIONS.training_info()))
    # A fold trained with sigmoid regions before "auto" existed resumes as what it is.
    assert with_resolved_loss(TrainingOptions(resume=True), inputs).loss == "bce_dice"
    assert with_resolved_loss(TrainingOptions(), inputs).loss == "ce_dice"  # a new run: the labels choose


def test_planning_imports_the_kinds_without_torch():
    code = ("import sys, autolung.output_kind, autolung.planning.plans, autolung.training.options; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
