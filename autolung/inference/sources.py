"""Where ``predict`` gets its models: trained folders under results/, the stored choice, or a bundle.

- ``-d X -c CONFIG [-f folds]``: ``results/<X>/<CONFIG>__<planner>``;
- ``-d X`` alone: ``results/<X>/inference_choice.json`` (configurations, folds, postprocessing);
- ``--model bundle.zip``: verified and extracted to a temporary folder for the run;
- ``--model folder``: an extracted bundle (``manifest.json``) or a configuration folder;
- ``--model`` nnU-Net v2 model folder(s) or export zip: translated on the fly (``autolung.nnunet``).
"""
from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autolung.errors import InvalidInputError
from autolung.inference.best_configuration import CHOICE_FILE, load_inference_choice
from autolung.inference.bundle import MANIFEST, opened_bundle
from autolung.inference.model import CHECKPOINT_NAME, TrainedModel, load_trained_model
from autolung.nnunet.importer import is_nnunet_model
from autolung.paths import DataRoot
from autolung.planning.registry import planner_in_use, planners_with_trained
from autolung.results import checkpoint_file

logger = logging.getLogger(__name__)


@dataclass
class ModelSelection:
    """Loaded models and the postprocessing to apply (None: each model's own, if any)."""

    models: list[TrainedModel]
    postprocessing: dict | None


def _only_trained_configuration(data_root: DataRoot, dataset_name: str, planner: str | None) -> str | None:
    """The configuration to predict with when none is named and no inference choice is stored: the
    only one trained (a ``fold_*`` folder with a final checkpoint), else None."""
    if (data_root.results_dataset(dataset_name) / CHOICE_FILE).is_file():
        return None
    folder = data_root.results_dataset(dataset_name)
    trained = sorted(child.name for child in (folder.iterdir() if folder.is_dir() else ())
                     if child.is_dir() and "__" in child.name
                     and (planner is None or child.name.partition("__")[2] == planner)
                     and any(child.glob(f"fold_*/{CHECKPOINT_NAME}")))
    if len(trained) != 1:
        return None
    configuration = trained[0].partition("__")[0]
    logger.info("configuration %s (none named, no inference choice): the only one trained (%s)", configuration,
                trained[0])
    return configuration


def _from_choice(base: Path, choice: dict, folds: Sequence[int] | None,
                 checkpoint_name: str = CHECKPOINT_NAME) -> ModelSelection:
    models = [load_trained_model(base / entry["folder"], list(folds) if folds else entry.get("folds") or None,
                                 checkpoint_name)
              for entry in choice["configurations"]]
    return ModelSelection(models, choice.get("postprocessing"))


def _from_folder(folder: Path, configurations: Sequence[str] | None, folds: Sequence[int] | None,
                 checkpoint_name: str = CHECKPOINT_NAME) -> ModelSelection:
    if (folder / "plans.json").is_file():
        return ModelSelection([load_trained_model(folder, list(folds) if folds else None, checkpoint_name)], None)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise InvalidInputError("neither a model bundle folder (manifest.json) nor a trained configuration "
                                "folder (plans.json)", path=folder)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    names = list(manifest["configurations"])
    if configurations:
        names = [n for n in names if n in configurations or n.split("__")[0] in configurations]
        if not names:
            raise InvalidInputError(f"the bundle holds no configuration {list(configurations)}", path=folder)
        return ModelSelection([load_trained_model(folder / n, list(folds) if folds else None, checkpoint_name)
                               for n in names], None)
    if (folder / CHOICE_FILE).is_file():
        choice = json.loads((folder / CHOICE_FILE).read_text(encoding="utf-8"))
        if all((folder / e["folder"]).is_dir() for e in choice["configurations"]):
            return _from_choice(folder, choice, folds, checkpoint_name)
    return ModelSelection([load_trained_model(folder / n, list(folds) if folds else None, checkpoint_name)
                           for n in names], None)


def _from_nnunet(stack: contextlib.ExitStack, source: Path, configurations: Sequence[str] | None,
                 folds: Sequence[int] | None) -> ModelSelection:
    """nnU-Net v2 model folder(s) or export zip, translated into a temporary folder for the run."""
    from autolung.nnunet.importer import opened_nnunet_models

    imported = stack.enter_context(opened_nnunet_models(source, configurations, folds))
    return ModelSelection([load_trained_model(imported.folder / name) for name in imported.configurations],
                          imported.postprocessing)


def select_models(stack: contextlib.ExitStack, data_root: DataRoot | None, dataset_name: str | None,
                  configurations: Sequence[str] | None, folds: Sequence[int] | None, planner: str | None = None,
                  model_path: Path | None = None, checkpoint: str = "final") -> ModelSelection:
    """Load the models a predict call asks for.

    Args:
        stack: keeps a bundle's temporary folder alive until the caller is done.
        data_root: the data root (for ``-d``).
        dataset_name: ``-d``.
        configurations: ``-c`` values.
        folds: ``-f`` values (None: the stored or all finished folds).
        planner: planner of the configuration folders; None: the only one trained for
            ``configurations``, else "auto".
        model_path: ``--model`` (zip or folder).
        checkpoint: which checkpoint of each fold: "final", "best" or "latest" (bundles hold
            only the final one).

    Returns:
        The models and postprocessing.
    """
    checkpoint_name = checkpoint_file(checkpoint)
    if model_path is not None:
        model_path = Path(model_path)
        if is_nnunet_model(model_path):
            return _from_nnunet(stack, model_path, configurations, folds)
        folder = stack.enter_context(opened_bundle(model_path)) if model_path.is_file() else model_path
        return _from_folder(folder, configurations, folds, checkpoint_name)
    if not dataset_name or data_root is None:
        raise InvalidInputError("give `dataset_name` (with `configurations`, or a stored choice) or `model_path`")
    if not configurations:
        only = _only_trained_configuration(data_root, dataset_name, planner)
        if only is None:
            choice = load_inference_choice(data_root, dataset_name)
            return _from_choice(data_root.results_dataset(dataset_name), choice, folds, checkpoint_name)
        configurations = [only]
    planner = planner_in_use(planner, planners_with_trained(data_root, dataset_name, configurations), dataset_name,
                             "trained configurations")
    models = [load_trained_model(data_root.training_output(dataset_name, c, planner), list(folds) if folds else None,
                                 checkpoint_name)
              for c in configurations]
    return ModelSelection(models, None)
