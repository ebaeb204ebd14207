"""Loading trained folds safely: plans, digests checked, weights only.

A trained configuration folder (``results/<ds>/<config>__<planner>``, or the same layout inside
an extracted model bundle) holds ``plans.json`` and ``fold_<k>/{checkpoint_final.pt,
training_info.json}``. Checkpoints are read only with ``torch.load(..., weights_only=True)``:
a pickle that tries to run code is refused before anything runs.
"""
from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from autolung.errors import InvalidInputError, InvalidPlansError, UnsafeFileError
from autolung.output_kind import RAW_LOGITS, SOFTMAX_CLASSES, output_kind_from_training_info
from autolung.planning.plans import ConfigurationPlan, Plans
from autolung.results import FINAL_CHECKPOINT, FOLD_ALL, FoldFolder, fold_folders, parse_fold

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = FINAL_CHECKPOINT
CHECKPOINT_FORMAT = "autolung-checkpoint"
POSTPROCESSING_FILE = "postprocessing.json"


@dataclass
class TrainedModel:
    """The networks of one trained configuration, ready for sliding-window prediction.

    Attributes:
        folder: the configuration folder the model was loaded from.
        plans: the plans it was trained with.
        configuration_name: e.g. "3d_fullres".
        folds: the loaded folds (numbers, and/or "all").
        networks: one network per fold, in eval mode, on the CPU.
        postprocessing: rules from ``postprocessing.json`` in the folder, when present.
        checkpoint_name: the checkpoint file every fold was loaded from.
        previous_stage: for a cascade (``3d_cascade_fullres``), the model of its previous stage
            (``3d_lowres``, same folds), run first on every case.
    """

    folder: Path
    plans: Plans
    configuration_name: str
    folds: list[int | str]
    networks: list[nn.Module]
    postprocessing: dict | None = field(default=None)
    checkpoint_name: str = CHECKPOINT_NAME
    previous_stage: TrainedModel | None = None

    @property
    def configuration(self) -> ConfigurationPlan:
        return self.plans.configuration(self.configuration_name)


class SoftmaxAsSigmoidLogits(nn.Module):
    """Wraps a softmax-trained network (background + one channel per label) for the predictor.

    The sliding window applies a sigmoid per channel; returning ``logit(softmax[1:])``
    (:meth:`~autolung.output_kind.OutputKind.foreground_logits`) makes that sigmoid give back
    exactly the softmax probabilities of the foreground labels.

    Args:
        network: the network with ``1 + labels`` output channels.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.network(x)
        output = output[0] if isinstance(output, (list, tuple)) else output
        return SOFTMAX_CLASSES.foreground_logits(output)


def sorted_folds(folds: list[int | str]) -> list[int | str]:
    """Distinct folds, numbers in order first, then ``"all"``."""
    return sorted(set(folds), key=lambda fold: (isinstance(fold, str), fold if isinstance(fold, int) else 0))


def available_folds(folder: str | Path, checkpoint_name: str = CHECKPOINT_NAME,
                    include_all: bool = True) -> list[int | str]:
    """The default folds of a configuration folder: every numbered fold with ``checkpoint_name``.

    Fold ``all`` (trained on every case) is the default only when no numbered fold is finished:
    the cross-validation folds, averaged, are the model that cross-validation scored, so they
    win when both exist (nnU-Net's default too); ``folds=["all"]`` picks fold ``all`` explicitly.

    Args:
        folder: a trained configuration folder.
        checkpoint_name: the checkpoint file a fold must hold.
        include_all: fall back on fold ``all`` when no numbered fold is finished.

    Returns:
        Sorted fold numbers, or ``["all"]``, or ``[]``.
    """
    folds = [fold.fold for fold in fold_folders(folder, numbered_only=True) if fold.is_finished(checkpoint_name)]
    if not folds and include_all and FoldFolder.of(folder, FOLD_ALL).is_finished(checkpoint_name):
        return [FOLD_ALL]
    return sorted(folds)


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict with ``weights_only=True``; refuse anything else.

    Args:
        path: the ``.pt`` file.

    Returns:
        The checkpoint dict.

    Raises:
        UnsafeFileError: when the file needs arbitrary unpickling or is not an autolung checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError("checkpoint not found", path=path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeFileError(f"refused: not a weights-only checkpoint ({first_line})", path=path) from None
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise UnsafeFileError("not an autolung checkpoint (no 'network_weights')", path=path)
    return checkpoint


def _check_digest(found: object, expected: str, path: Path) -> None:
    if found != expected:
        raise InvalidPlansError(
            f"plans digest {found!r} does not match plans.json ({expected}); the model was trained with other plans",
            path=path)


def _load_fold(folder: Path, fold: int | str, plans: Plans, checkpoint_name: str) -> tuple[str, nn.Module]:
    """Build and fill one fold's network after checking its digests; return (configuration, network)."""
    from autolung.network import build_network  # heavy import, only when a model is loaded

    fold_folder = FoldFolder.of(folder, fold)
    info = fold_folder.read_training_info()
    digest = plans.digest()
    _check_digest(info.plans_digest, digest, fold_folder.training_info_file)
    checkpoint_path = fold_folder.checkpoint(checkpoint_name)
    checkpoint = load_checkpoint(checkpoint_path)
    _check_digest(checkpoint.get("plans_digest"), digest, checkpoint_path)
    configuration = str(info.configuration or checkpoint.get("configuration"))
    arch = plans.configuration(configuration).architecture
    if info.in_channels is None or info.out_channels is None:
        raise InvalidInputError("training info lacks `in_channels` or `out_channels`",
                                path=fold_folder.training_info_file)
    network = build_network(arch, info.in_channels, info.out_channels, deep_supervision=False, initialise=False)
    try:
        network.load_state_dict(checkpoint["network_weights"], strict=True)
    except RuntimeError as exc:
        raise InvalidInputError(f"weights do not fit the planned architecture ({str(exc).splitlines()[0]})",
                                path=checkpoint_path) from None
    network.eval()
    info_path = fold_folder.training_info_file
    if info.output_activation == RAW_LOGITS:
        # Raw outputs (imported nnU-Net models): the plans' inference section applies the activation.
        inference = plans.configuration(configuration).inference
        if inference is None or not inference.average_logits:
            raise InvalidInputError(f"output_activation '{RAW_LOGITS}' needs plans with inference.average_logits",
                                    path=info_path)
        return configuration, network
    return configuration, output_kind_from_training_info(info.to_json(), info_path).prediction_network(network)


def load_trained_model(folder: str | Path, folds: list[int | str] | None = None,
                       checkpoint_name: str = CHECKPOINT_NAME) -> TrainedModel:
    """Load the chosen folds of a trained configuration folder.

    Args:
        folder: ``results/<ds>/<config>__<planner>`` (or the same layout from a bundle).
        folds: folds to load (numbers and/or ``"all"``); None loads the default folds
            (:func:`available_folds`).
        checkpoint_name: which checkpoint file of each fold.

    Returns:
        The loaded model.

    Raises:
        InvalidInputError: missing folder, folds or files.
        InvalidPlansError: a digest mismatch between plans.json and a fold.
        UnsafeFileError: a checkpoint that is not weights-only.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError("trained model folder not found", path=folder)
    plans = Plans.load(folder / "plans.json")
    folds = available_folds(folder, checkpoint_name) if folds is None else sorted_folds([parse_fold(f) for f in folds])
    if not folds:
        raise InvalidInputError(f"no fold_<k>/{checkpoint_name} (nor fold_all/{checkpoint_name}) found; "
                                "train the configuration first", path=folder)
    configurations, networks = set(), []
    for fold in folds:
        configuration, network = _load_fold(folder, fold, plans, checkpoint_name)
        configurations.add(configuration)
        networks.append(network)
    if len(configurations) != 1:
        raise InvalidInputError(f"folds belong to different configurations: {sorted(configurations)}", path=folder)
    postprocessing_path = folder / POSTPROCESSING_FILE
    postprocessing = json.loads(postprocessing_path.read_text()) if postprocessing_path.is_file() else None
    logger.info("loaded %s folds %s from %s", configurations, folds, folder)
    configuration = configurations.pop()
    return TrainedModel(folder=folder, plans=plans, configuration_name=configuration, folds=folds,
                        networks=networks, postprocessing=postprocessing, checkpoint_name=checkpoint_name,
                        previous_stage=_previous_stage_model(folder, plans, configuration, folds, checkpoint_name))


def _previous_stage_model(folder: Path, plans: Plans, configuration: str, folds: list[int | str],
                          checkpoint_name: str) -> TrainedModel | None:
    """A cascade's previous stage: the sibling folder ``<previous>__<planner>``, the same folds.

    Raises:
        InvalidInputError: the previous stage is not trained (naming its folder), or was
            trained with other plans.
    """
    previous = plans.configuration(configuration).previous_stage
    if not previous:
        return None
    suffix = folder.name[len(configuration):] if folder.name.startswith(configuration) else ""
    previous_folder = folder.parent / f"{previous}{suffix}"
    missing = [fold for fold in folds if not FoldFolder.of(previous_folder, fold).is_finished(checkpoint_name)]
    if missing:
        raise InvalidInputError(f"{configuration} predicts on top of {previous}, whose fold(s) "
                                f"{', '.join(map(str, missing))} have no {checkpoint_name}: train {previous} with "
                                "the same folds first", path=previous_folder)
    model = load_trained_model(previous_folder, folds, checkpoint_name)
    if model.plans.digest() != plans.digest():
        raise InvalidPlansError(f"{previous} was trained with other plans than {configuration}",
                                path=previous_folder / "plans.json")
    return model
