"""The network's output kind: sigmoid regions or softmax classes, decided once per trained fold.

Two kinds exist:

- :data:`SIGMOID_REGIONS` (loss ``bce_dice``, the default): one sigmoid channel per region of the
  plans' :class:`~autolung.labels.RegionMapping`; targets are binary region masks; regions may nest.
- :data:`SOFTMAX_CLASSES` (loss ``ce_dice``, nnU-Net's output): background plus one channel per
  label, softmax over them; targets are class-index maps; labels must be disjoint.

The kind is chosen once, from the training option ``loss`` (:func:`as_output_kind`) or from a fold's
``training_info.json`` (:func:`output_kind_from_training_info`), or, for imported nnU-Net models,
from the plans' ``inference.output_activation`` (:func:`output_kind_for_activation`). Everything
that differs between the kinds lives here: output channels, target encoding, logits to
probabilities, probabilities to a label map, the pseudo-Dice and the training loss. Other modules
ask the kind; none compares loss or activation names.

This module does not import torch when it is loaded: plans and training options (read by
planning and preprocessing, which run without torch) take their names from it. The methods
that compute on tensors use tensor methods, and import torch only where a function is needed.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autolung.errors import AutolungError, InvalidInputError
from autolung.labels import RegionMapping

if TYPE_CHECKING:
    import torch
    from torch import nn

# ``output_activation`` of models imported from nnU-Net: the network returns raw logits and the
# plans' inference section applies the kind's activation after averaging them.
RAW_LOGITS = "logits"
# A logit this far from 0 gives probability 0 (or 1) in float32 and still fits float16 storage.
CERTAIN_LOGIT = 1e4
# Softmax probabilities are clamped before ``logit`` so it stays finite; far below any decision threshold.
_FOREGROUND_CLAMP = 1e-6


class OutputKind(ABC):
    """What the network's output channels mean, and everything that follows from it.

    Kinds hold no state: compare them with ``==`` (they survive pickling into data workers).

    Attributes:
        name: recorded in ``training_info.json`` as ``output_kind``.
        loss: the training option ``loss`` that selects this kind.
        activation: ``output_activation`` in training info and in the plans' inference section.
    """

    name: str
    loss: str
    activation: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutputKind) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"OutputKind({self.name!r})"

    @abstractmethod
    def output_channels(self, regions: RegionMapping) -> int:
        """Network output channels for the plans' region mapping.

        Args:
            regions: the plans' region mapping.

        Returns:
            Channel count.

        Raises:
            AutolungError: the kind cannot express these regions.
        """

    @abstractmethod
    def encode_labels(self, labels: np.ndarray, regions: RegionMapping) -> np.ndarray:
        """Targets of a batch of non-negative label maps ``(B, *spatial)``.

        Returns:
            uint8 ``(B, K, *spatial)``.
        """

    @abstractmethod
    def probabilities(self, logits: torch.Tensor, channel_axis: int = 1) -> torch.Tensor:
        """Probabilities of every output channel (background included for softmax classes).

        Args:
            logits: raw network output.
            channel_axis: the channel axis of ``logits``.

        Returns:
            Tensor of the same shape, in [0, 1].
        """

    @abstractmethod
    def background_logits(self, channels: int) -> np.ndarray:
        """Averaged logits that mean certain background, for voxels no window predicted.

        Used where averaged logits are kept past the sliding window (resampled before the
        activation, as nnU-Net does): they stay finite, so resampling never meets an infinity.

        Args:
            channels: the output channel count.

        Returns:
            float32 ``(channels,)``: every region's probability 0 (sigmoid), or background 1 (softmax).
        """

    @abstractmethod
    def label_scores(self, logits: np.ndarray) -> np.ndarray:
        """One channel's averaged logits in a form the label rule compares, in place.

        :meth:`RegionMapping.probabilities_to_labels` thresholds sigmoid regions at 0.5 and takes
        the most probable softmax class. A sigmoid is applied per channel; softmax logits are
        returned as they are, since the largest logit is the most probable class.

        Args:
            logits: float32 logits of one channel (any shape); overwritten.

        Returns:
            ``logits``, transformed.
        """

    @abstractmethod
    def foreground_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-channel logits whose sigmoid is each foreground channel's probability.

        autolung's sliding window applies a sigmoid per channel (it averages probabilities); this
        is the output it must be given.

        Args:
            logits: raw network output ``(B, K, *spatial)``.

        Returns:
            ``(B, R, *spatial)`` logits, one channel per region.
        """

    @abstractmethod
    def foreground_decisions(self, logits: torch.Tensor,
                             target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted and true foreground per channel, for the pseudo-Dice.

        Args:
            logits: full-resolution output ``(B, K, *spatial)``.
            target: its target without the annotated-voxel channel.

        Returns:
            ``(prediction, truth)``, boolean ``(B, R, *spatial)``.
        """

    @abstractmethod
    def _per_resolution_loss(self, has_ignore: bool) -> nn.Module:
        """The loss of one output resolution."""

    def targets(self, seg: np.ndarray, regions: RegionMapping) -> np.ndarray:
        """Targets for one batch of labels.

        Args:
            seg: ``(B, 1, *spatial)`` integer labels (negative values count as background).
            regions: the plans' region mapping.

        Returns:
            uint8 targets (:meth:`encode_labels`). With an ignore label one more channel comes
            last: 1 where the voxel is annotated, 0 where it is not (the losses and the
            pseudo-Dice leave those voxels out, see :func:`split_annotated`).
        """
        labels = np.maximum(seg[:, 0], 0)
        annotated = regions.annotated(labels)
        if annotated is not None:
            labels = np.where(annotated, labels, 0)
        targets = self.encode_labels(labels, regions)
        if annotated is None:
            return targets
        return np.concatenate([targets, annotated[:, None].astype(np.uint8)], axis=1)

    def label_map(self, probabilities: np.ndarray, regions: RegionMapping) -> np.ndarray:
        """Label map from the predictor's per-channel probabilities ``(R, ...)``.

        Both kinds reach the predictor as one probability per region channel (softmax classes
        through :meth:`foreground_logits`), so the region mapping's rule applies to both: argmax
        of confident channels for disjoint labels, painting in order for nested regions, plain
        argmax when channel 0 is a background channel (imported softmax models).

        Returns:
            uint8 label map.
        """
        return regions.probabilities_to_labels(probabilities)

    def prediction_network(self, network: nn.Module) -> nn.Module:
        """``network`` as the sliding window needs it: returning :meth:`foreground_logits`.

        Returns:
            ``network`` itself when its outputs already are, else a wrapper.
        """
        return network

    def pseudo_dice_counts(self, logits: torch.Tensor, target: torch.Tensor,
                           has_ignore: bool = False) -> tuple[torch.Tensor, ...]:
        """True/false positives and false negatives per foreground channel, summed over the batch.

        Args:
            logits: full-resolution output ``(B, K, *spatial)``.
            target: matching target (:meth:`targets`).
            has_ignore: the target's last channel is the annotated-voxel mask; other voxels count nowhere.

        Returns:
            ``(tp, fp, fn)``, float64 tensors of one value per channel.
        """
        target, annotated = split_annotated(target, has_ignore)
        prediction, truth = self.foreground_decisions(logits, target)
        if annotated is not None:
            prediction = prediction & annotated.bool()
            truth = truth & annotated.bool()
        axes = [0, *range(2, logits.ndim)]
        tp = (prediction & truth).sum(axes).double().cpu()
        fp = (prediction & ~truth).sum(axes).double().cpu()
        fn = (~prediction & truth).sum(axes).double().cpu()
        return tp, fp, fn

    def build_loss(self, has_ignore: bool = False, deep_supervision: bool = True) -> nn.Module:
        """The deep-supervised training loss.

        Args:
            has_ignore: the dataset has an ignore label (targets carry an annotated-voxel channel).
            deep_supervision: False weights the full-resolution output alone.

        Returns:
            A :class:`~autolung.training.loss.DeepSupervisionLoss`.
        """
        # Deferred: the losses are training code, and inference imports this module without it.
        from autolung.training.loss import DeepSupervisionLoss

        return DeepSupervisionLoss(self._per_resolution_loss(has_ignore), deep_supervision)

    def training_info(self) -> dict[str, str]:
        """The fields recorded in ``training_info.json`` (``loss`` and ``output_activation`` are
        kept for readers of earlier autolung versions).

        Returns:
            ``{"output_kind", "loss", "output_activation"}``.
        """
        return {"output_kind": self.name, "loss": self.loss, "output_activation": self.activation}


class SigmoidRegions(OutputKind):
    """One sigmoid channel per region; binary region targets; BCE + soft Dice."""

    name = "sigmoid_regions"
    loss = "bce_dice"
    activation = "sigmoid"

    def output_channels(self, regions: RegionMapping) -> int:
        return regions.num_channels

    def encode_labels(self, labels: np.ndarray, regions: RegionMapping) -> np.ndarray:
        return np.stack([regions.labels_to_targets(sample) for sample in labels])

    def probabilities(self, logits: torch.Tensor, channel_axis: int = 1) -> torch.Tensor:
        return logits.sigmoid()

    def background_logits(self, channels: int) -> np.ndarray:
        return np.full(channels, -CERTAIN_LOGIT, dtype=np.float32)

    def label_scores(self, logits: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        return expit(logits, out=logits)

    def foreground_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def foreground_decisions(self, logits: torch.Tensor,
                             target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return logits > 0, target.bool()

    def _per_resolution_loss(self, has_ignore: bool) -> nn.Module:
        from autolung.training.loss import RegionBCEDiceLoss  # deferred, see build_loss

        return RegionBCEDiceLoss(has_ignore=has_ignore)


class SoftmaxClasses(OutputKind):
    """Background plus one channel per label, softmax over them; class-index targets; CE + soft Dice."""

    name = "softmax_classes"
    loss = "ce_dice"
    activation = "softmax"

    def output_channels(self, regions: RegionMapping) -> int:
        if not regions.is_disjoint:
            raise AutolungError(f"`loss` {self.loss} needs disjoint labels; this dataset declares nested regions")
        return regions.num_channels + 1

    def encode_labels(self, labels: np.ndarray, regions: RegionMapping) -> np.ndarray:
        lookup = label_to_class_lookup(regions)
        return lookup[np.minimum(labels, len(lookup) - 1)][:, None]

    def probabilities(self, logits: torch.Tensor, channel_axis: int = 1) -> torch.Tensor:
        return logits.softmax(dim=channel_axis)

    def background_logits(self, channels: int) -> np.ndarray:
        logits = np.full(channels, -CERTAIN_LOGIT, dtype=np.float32)
        logits[0] = 0.0
        return logits

    def label_scores(self, logits: np.ndarray) -> np.ndarray:
        return logits

    def foreground_logits(self, logits: torch.Tensor) -> torch.Tensor:
        foreground = self.probabilities(logits.float())[:, 1:]
        return foreground.clamp(_FOREGROUND_CLAMP, 1 - _FOREGROUND_CLAMP).logit()

    def foreground_decisions(self, logits: torch.Tensor,
                             target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torch.nn.functional import one_hot  # deferred: see the module docstring

        classes = logits.shape[1]
        prediction = one_hot(logits.argmax(1), classes).movedim(-1, 1)[:, 1:].bool()
        truth = one_hot(target[:, 0].long(), classes).movedim(-1, 1)[:, 1:].bool()
        return prediction, truth

    def prediction_network(self, network: nn.Module) -> nn.Module:
        # Deferred: autolung.inference.model (torch) imports this module.
        from autolung.inference.model import SoftmaxAsSigmoidLogits

        return SoftmaxAsSigmoidLogits(network).eval()

    def _per_resolution_loss(self, has_ignore: bool) -> nn.Module:
        from autolung.training.loss import CEDiceLoss  # deferred, see build_loss

        return CEDiceLoss(has_ignore=has_ignore)


SIGMOID_REGIONS: OutputKind = SigmoidRegions()
SOFTMAX_CLASSES: OutputKind = SoftmaxClasses()
OUTPUT_KINDS: tuple[OutputKind, ...] = (SIGMOID_REGIONS, SOFTMAX_CLASSES)
LOSSES: tuple[str, ...] = tuple(kind.loss for kind in OUTPUT_KINDS)
ACTIVATIONS: tuple[str, ...] = tuple(kind.activation for kind in OUTPUT_KINDS)


# The training option ``loss`` that lets the dataset's labels decide (:func:`default_output_kind`).
AUTO_LOSS = "auto"


def default_output_kind(regions: RegionMapping) -> tuple[OutputKind, str]:
    """The output kind a dataset's labels train best with, and why.

    Two or more mutually exclusive labels: softmax classes, as nnU-Net does: the labels compete
    for each voxel instead of each being a separate yes/no question (held-out patients, one core:
    Task04_Hippocampus at 5 minutes, mean Dice 0.096 against 0.000; COVID_Infection2D at
    10 minutes, 0.332 and 0.287 in two runs against 0.293 and 0.295, docs/benchmarks.md). One label, or nested
    regions, which softmax cannot express: sigmoid regions (for one label the two are the same model).

    Args:
        regions: the plans' region mapping.

    Returns:
        ``(kind, reason)``.
    """
    if not regions.is_disjoint:
        return SIGMOID_REGIONS, "nested regions, which only sigmoid regions express"
    if regions.num_channels >= 2:
        return SOFTMAX_CLASSES, f"{regions.num_channels} mutually exclusive labels: softmax classes, as nnU-Net"
    return SIGMOID_REGIONS, "one label: sigmoid regions"


def as_output_kind(value: OutputKind | str) -> OutputKind:
    """The kind for a training option ``loss`` ("bce_dice" or "ce_dice"); a kind is returned as it is.

    Raises:
        AutolungError: an unknown loss.
    """
    if isinstance(value, OutputKind):
        return value
    for kind in OUTPUT_KINDS:
        if kind.loss == value:
            return kind
    if value == AUTO_LOSS:
        raise AutolungError(f"`loss` {AUTO_LOSS} names no output kind until the dataset's labels choose one "
                            "(default_output_kind)")
    raise AutolungError(f"`loss` must be one of {', '.join(LOSSES)}, got {value!r}")


def output_kind_for_activation(activation: str) -> OutputKind:
    """The kind of an ``output_activation`` ("sigmoid" or "softmax").

    Raises:
        ValueError: an unknown activation (including :data:`RAW_LOGITS`, which names no kind).
    """
    for kind in OUTPUT_KINDS:
        if kind.activation == activation:
            return kind
    raise ValueError(f"unknown output_activation {activation!r}; known: {', '.join(ACTIVATIONS)}")


def output_kind_from_training_info(info: Mapping[str, Any], path: str | Path | None = None,
                                   default: OutputKind | None = None) -> OutputKind:
    """The kind a fold was trained with, from its ``training_info.json``.

    ``output_kind`` is read when present; files of earlier versions give the kind through
    ``output_activation`` and/or ``loss``. Keys that are present must agree.

    Args:
        info: the parsed training info.
        path: the file, named in errors.
        default: the kind when the info names none; None means :data:`SIGMOID_REGIONS`, what
            autolung trained before the loss was recorded.

    Returns:
        The kind.

    Raises:
        InvalidInputError: an unknown value, keys that disagree, or :data:`RAW_LOGITS` (an
            imported model, whose kind comes from its plans).
    """
    found: dict[str, OutputKind] = {}
    for key, attribute in (("output_kind", "name"), ("output_activation", "activation"), ("loss", "loss")):
        if key not in info:
            continue
        matches = [kind for kind in OUTPUT_KINDS if getattr(kind, attribute) == info[key]]
        if not matches:
            raise InvalidInputError(f"unknown {key} {info[key]!r}", path=path)
        found[key] = matches[0]
    if len(set(found.values())) > 1:
        described = ", ".join(f"{key} {info[key]!r}" for key in found)
        raise InvalidInputError(f"training info disagrees with itself: {described}", path=path)
    if found:
        return next(iter(found.values()))
    return default if default is not None else SIGMOID_REGIONS


def split_annotated(targets: torch.Tensor, has_ignore: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Targets without their last (annotated-voxel) channel, and that channel as a mask.

    Args:
        targets: ``(B, K, *spatial)``; with ``has_ignore`` the last channel is the annotated mask
            (see :meth:`OutputKind.targets`).
        has_ignore: whether the dataset has an ignore label.

    Returns:
        ``(targets, mask)``; mask is None without an ignore label.
    """
    if not has_ignore:
        return targets, None
    return targets[:, :-1], targets[:, -1:]


def label_to_class_lookup(regions: RegionMapping) -> np.ndarray:
    """Lookup table label value -> class index (0 background, i + 1 for region i) for softmax classes.

    Args:
        regions: a disjoint region mapping.

    Returns:
        uint8 lookup of length max label + 1.
    """
    top = max([0, *(v for r in regions.regions for v in r)])
    lookup = np.zeros(top + 1, dtype=np.uint8)
    for index, region in enumerate(regions.regions):
        lookup[list(region)] = index + 1
    return lookup
