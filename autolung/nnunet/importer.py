"""nnU-Net v2 model folders and zips -> autolung configuration folders, with provenance.

Accepted sources:

- a trained model folder ``<trainer>__<plans>__<configuration>/`` with ``plans.json``,
  ``dataset.json`` and ``fold_<k>/checkpoint_final.pth`` (or ``checkpoint_best.pth``);
- a dataset results folder holding several such folders (an ensemble of configurations);
- a zip made by ``nnUNetv2_export_model_to_zip`` (``Dataset<ID>_<Name>/<trainer>__<plans>__<c>/...``).

Each configuration becomes an autolung configuration folder ``<configuration>__<trainer>-<plans>/``
with autolung ``plans.json`` (translated, :mod:`autolung.nnunet.translate`), per fold
``checkpoint_final.pt`` (renamed weights, :mod:`autolung.nnunet.weights`) and
``training_info.json``, and ``imported_from.json``: the source, trainer, plans, configuration,
folds, epochs and the sha256 of every file read. From then on it is an autolung model like any
other: ``predict``, ``export_model`` and ``install_model`` treat it as such. nnU-Net's pickled
files (``postprocessing.pkl``, ``*.pkl`` properties) are never read.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from autolung import __version__
from autolung.errors import InvalidInputError, InvalidPlansError, UnsafeFileError
from autolung.nnunet.checkpoint import load_nnunet_checkpoint
from autolung.nnunet.translate import TranslatedModel, translate_plans
from autolung.nnunet.weights import convert_state_dict
from autolung.output_kind import RAW_LOGITS
from autolung.results import FoldFolder, TrainingInfo, fold_folders
from autolung.utils.atomic import write_json_atomic

logger = logging.getLogger(__name__)

IMPORT_RECORD = "imported_from.json"  # also named in autolung.inference.bundle (exported with the model)
SOURCE_FORMAT = "nnunet-v2"
CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_best.pth")
_FOLDER_PATTERN = re.compile(r"^(?P<trainer>[^_][^/]*?)__(?P<plans>[^/]+?)__(?P<configuration>[^/_][^/]*)$")
# Files of an nnU-Net zip that autolung reads; everything else (pictures, logs, pickles) stays packed.
# Paths recorded in inference_information.json (postprocessing) are looked up under the local folder.
_WANTED = re.compile(r"(^|/)(plans\.json|dataset\.json|inference_information\.json|postprocessing\.json|"
                     r"checkpoint_(final|best)\.pth)$")
MAX_UNCOMPRESSED_BYTES = 16 * 1024 ** 3


@dataclass(frozen=True)
class NnunetModelFolder:
    """One trained nnU-Net configuration folder and the names its folder name carries."""

    folder: Path
    trainer: str
    plans_name: str
    configuration: str

    @property
    def autolung_name(self) -> str:
        """The autolung configuration folder name it is imported as."""
        return f"{self.configuration}__{self.trainer}-{self.plans_name}"


def _model_folder(folder: Path) -> NnunetModelFolder | None:
    match = _FOLDER_PATTERN.match(folder.name)
    if not match or not (folder / "plans.json").is_file() or not (folder / "dataset.json").is_file():
        return None
    return NnunetModelFolder(folder, match["trainer"], match["plans"], match["configuration"])


def find_nnunet_models(path: str | Path) -> list[NnunetModelFolder]:
    """nnU-Net model folders at ``path``: the folder itself, or its ``<trainer>__<plans>__<c>`` children.

    Args:
        path: a model folder or a dataset results folder.

    Returns:
        The model folders found (empty when ``path`` is not an nnU-Net model), sorted by name.
    """
    path = Path(path)
    if not path.is_dir():
        return []
    own = _model_folder(path)
    if own is not None:
        return [own]
    return sorted((m for m in (_model_folder(child) for child in path.iterdir() if child.is_dir()) if m is not None),
                  key=lambda m: m.folder.name)


def is_nnunet_zip(path: str | Path) -> bool:
    """True for a zip holding ``<trainer>__<plans>__<configuration>/plans.json`` entries (nnU-Net's export)."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if "manifest.json" in names:  # an autolung bundle
        return False
    return any(_FOLDER_PATTERN.match(PurePosixPath(n).parent.name) and PurePosixPath(n).name == "plans.json"
               for n in names)


def is_nnunet_model(path: str | Path) -> bool:
    """True when ``path`` is an nnU-Net model folder, a folder of them, or an nnU-Net zip."""
    return bool(find_nnunet_models(path)) or is_nnunet_zip(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError("file missing in the nnU-Net model folder", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"not valid JSON ({exc})", path=path) from None


def _fold_checkpoints(model: NnunetModelFolder, folds: Sequence[int | str] | None,
                      checkpoint_name: str | None) -> list[tuple[str, Path]]:
    """(fold name, checkpoint path) pairs: checkpoint_final.pth, else checkpoint_best.pth (with a warning)."""
    names = (checkpoint_name,) if checkpoint_name else CHECKPOINT_NAMES
    found = []
    wanted = None if folds is None else {str(f) for f in folds}
    # nnU-Net names its fold folders as autolung does (fold_<k>, fold_all); others are not folds.
    for fold_folder in fold_folders(model.folder):
        fold = str(fold_folder.fold)
        if wanted is not None and fold not in wanted:
            continue
        checkpoint = next((fold_folder.path / n for n in names if (fold_folder.path / n).is_file()), None)
        if checkpoint is None:
            continue
        if checkpoint.name != names[0]:
            logger.warning("%s: no %s, using %s (the best validation epoch, not the final one)",
                           fold_folder.path, names[0], checkpoint.name)
        found.append((fold, checkpoint))
    if wanted is not None and {f for f, _ in found} != wanted:
        missing = sorted(wanted - {f for f, _ in found})
        raise InvalidInputError(f"folds {missing} have no {' or '.join(names)}", path=model.folder)
    if not found:
        raise InvalidInputError(f"no fold_<k>/{' or '.join(names)} found", path=model.folder)
    return found


def _mirror_axes(checkpoints: list[dict[str, Any]], model: NnunetModelFolder) -> list[int] | None:
    axes = [c.get("inference_allowed_mirroring_axes") for c in checkpoints]
    normalised = [None if a is None else tuple(int(v) for v in a) for a in axes]
    if len(set(normalised)) != 1:
        raise InvalidPlansError(f"folds disagree on inference_allowed_mirroring_axes {normalised}",
                                path=model.folder)
    return None if normalised[0] is None else list(normalised[0])


def _fold_number(fold: str) -> int | str:
    return int(fold) if fold.isdigit() else fold


def convert_model_folder(model: NnunetModelFolder, destination: Path, folds: Sequence[int | str] | None = None,
                         checkpoint_name: str | None = None) -> Path:
    """Write ``destination/<configuration>__<trainer>-<plans>/`` from one nnU-Net model folder.

    Args:
        model: the nnU-Net configuration folder.
        destination: the folder to write the autolung configuration folder into.
        folds: folds to import (None: every fold with a checkpoint).
        checkpoint_name: "checkpoint_final.pth" or "checkpoint_best.pth" (None: final, else best).

    Returns:
        The autolung configuration folder.

    Raises:
        InvalidPlansError: what autolung cannot represent (named), or weights that do not fit the plans.
        UnsafeFileError: a checkpoint that would run code when unpickled.
    """
    from autolung.network import build_network
    from autolung.training.checkpoint import checkpoint_header, save_checkpoint

    fold_files = _fold_checkpoints(model, folds, checkpoint_name)
    checkpoints = [load_nnunet_checkpoint(path) for _, path in fold_files]
    plans_json, dataset_json = _read_json(model.folder / "plans.json"), _read_json(model.folder / "dataset.json")
    translated = translate_plans(plans_json, dataset_json, model.configuration, _mirror_axes(checkpoints, model))
    target = destination / model.autolung_name
    target.mkdir(parents=True, exist_ok=True)
    plans = translated.plans
    plans.save(target / "plans.json")
    digest = plans.digest()
    architecture = plans.configuration(model.configuration).architecture
    record_folds = []
    for (fold, path), checkpoint in zip(fold_files, checkpoints):
        trainer = str(checkpoint.get("trainer_name", model.trainer))
        weights = _fitted_weights(checkpoint, translated, architecture, trainer, path, build_network)
        fold_folder = FoldFolder.of(target, fold)
        fold_folder.path.mkdir(exist_ok=True)
        epoch = int(checkpoint.get("current_epoch", 0) or 0)
        payload = {**checkpoint_header(digest, model.configuration, _fold_number(fold), epoch),
                   "network_weights": weights}
        save_checkpoint(fold_folder.final_checkpoint, payload)
        fold_folder.write_training_info(TrainingInfo(
            configuration=model.configuration, planner=plans.planner, fold=fold_folder.fold, plans_digest=digest,
            in_channels=translated.in_channels, out_channels=translated.out_channels, autolung_version=__version__,
            output_activation=RAW_LOGITS, extra={"imported_from": SOURCE_FORMAT, "trainer_name": trainer}))
        record_folds.append({"fold": _fold_number(fold), "checkpoint": path.name, "trainer_name": trainer,
                             "epoch": epoch, "sha256": _sha256(path)})
    write_json_atomic(target / IMPORT_RECORD, import_record(model, translated, record_folds))
    logger.info("imported nnU-Net %s (%s, folds %s) into %s", model.folder.name, translated.network_class,
                [f["fold"] for f in record_folds], target)
    return target


def _fitted_weights(checkpoint: dict[str, Any], translated: TranslatedModel, architecture: Any, trainer: str,
                    path: Path, build_network: Any) -> dict:
    """autolung-named weights, checked by loading them strictly into the planned network."""
    try:
        weights = convert_state_dict(checkpoint["network_weights"])
    except InvalidPlansError as exc:
        raise InvalidPlansError(f"{exc.problem} (trainer {trainer}, planned network {translated.network_class})",
                                path=path) from None
    network = build_network(architecture, translated.in_channels, translated.out_channels, deep_supervision=False,
                            initialise=False)
    try:
        network.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise InvalidPlansError(f"the weights do not fit {translated.network_class} as planned (trainer {trainer} "
                                f"may build its own network): {detail}", path=path) from None
    return weights


def import_record(model: NnunetModelFolder, translated: TranslatedModel, folds: list[dict]) -> dict[str, Any]:
    """The provenance written as ``imported_from.json`` and copied into bundle manifests."""
    files = {name: _sha256(model.folder / name) for name in ("plans.json", "dataset.json")}
    return {"format": SOURCE_FORMAT, "source": str(model.folder.resolve()), "source_folder": model.folder.name,
            "trainer_name": model.trainer, "plans_name": translated.plans_name,
            "configuration": model.configuration, "network_class": translated.network_class,
            "dataset_name": translated.plans.dataset_name, "autolung_version": __version__,
            "sha256": files, "folds": folds}


def _check_entry(info: zipfile.ZipInfo, archive_path: Path) -> PurePosixPath:
    name = info.filename
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeFileError(f"zip entry {name!r} has an absolute or non-POSIX path; refused", path=archive_path)
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise UnsafeFileError(f"zip entry {name!r} escapes the archive folder; refused", path=archive_path)
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise UnsafeFileError(f"zip entry {name!r} is a symbolic link; refused", path=archive_path)
    return path


def extract_nnunet_zip(archive_path: str | Path, target: str | Path) -> Path:
    """Extract the files autolung reads from an nnU-Net export zip into ``target``.

    Only ``plans.json``, ``dataset.json``, ``inference_information.json``, ``postprocessing.json``
    and ``fold_*/checkpoint_{final,best}.pth`` are written; every entry name is checked first.

    Args:
        archive_path: the zip from ``nnUNetv2_export_model_to_zip``.
        target: an empty or new folder.

    Returns:
        ``target``.
    """
    archive_path, target = Path(archive_path), Path(target)
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, FileNotFoundError) as exc:
        raise InvalidInputError(f"not a readable zip file ({exc})", path=archive_path) from None
    with archive:
        infos = archive.infolist()
        paths = [_check_entry(info, archive_path) for info in infos]  # every name checked before writing
        wanted = [(info, path) for info, path in zip(infos, paths) if not info.is_dir() and _WANTED.search(info.filename)]
        if sum(info.file_size for info, _ in wanted) > MAX_UNCOMPRESSED_BYTES:
            raise UnsafeFileError("zip would expand beyond the size limit; refused", path=archive_path)
        for info, path in wanted:
            destination = target.joinpath(*path.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(destination, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
    return target


def _model_folders_in(folder: Path) -> list[NnunetModelFolder]:
    """Model folders in an extracted zip (``Dataset*/<trainer>__<plans>__<c>/``) or a plain folder."""
    models = find_nnunet_models(folder)
    if models:
        return models
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        models += find_nnunet_models(child)
    return models


@dataclass
class ImportedModels:
    """What :func:`import_nnunet_models` wrote.

    Attributes:
        dataset_name: from the plans.
        folder: where the autolung configuration folders are.
        configurations: their names (several: an ensemble, averaged).
        postprocessing: autolung rules for the ensemble chosen by ``inference_information.json``
            (None: each configuration's own ``postprocessing.json``, if any).
        folds: the folds ``inference_information.json`` names (None: all).
    """

    dataset_name: str
    folder: Path
    configurations: list[str]
    postprocessing: dict | None = None
    folds: list[int | str] | None = None


INFERENCE_INFORMATION = "inference_information.json"
# nnU-Net postprocessing functions autolung reproduces, as autolung rule methods.
_POSTPROCESSING_FUNCTIONS = {"remove_all_but_largest_component_from_segmentation": "largest_component"}


def translate_postprocessing(path: Path) -> dict:
    """nnU-Net's ``postprocessing.json`` -> autolung rules (``{"rules": [...]}``).

    nnU-Net keeps, per rule, the largest connected component (full connectivity) of a label, a
    region or a union of labels, setting the rest to background: autolung's ``largest_component``.

    Args:
        path: the ``postprocessing.json`` next to nnU-Net's ``postprocessing.pkl`` (never read).

    Returns:
        The autolung postprocessing description.
    """
    payload = _read_json(path)
    functions = payload.get("postprocessing_fns", [])
    kwargs = payload.get("postprocessing_kwargs", [])
    if len(functions) != len(kwargs):
        raise InvalidInputError("postprocessing_fns and postprocessing_kwargs differ in length", path=path)
    rules = []
    for function, arguments in zip(functions, kwargs):
        method = _POSTPROCESSING_FUNCTIONS.get(str(function))
        if method is None:
            raise InvalidPlansError(f"nnU-Net postprocessing function {function!r} is not supported; "
                                    f"supported: {', '.join(_POSTPROCESSING_FUNCTIONS)}", path=path)
        label = arguments.get("labels_or_regions")
        if isinstance(label, list) and any(isinstance(v, list) for v in label):
            raise InvalidPlansError(f"postprocessing over a union of regions {label} is not supported", path=path)
        rules.append({"label": label if isinstance(label, int) else [int(v) for v in label],
                      "method": method})
    return {"rules": rules, "source": f"nnU-Net {path.parent.name}/{path.name}"}


def _local_copy(recorded: str, dataset_folder: Path) -> Path | None:
    """A path recorded on the training machine, found again under the local dataset folder."""
    parts = PurePosixPath(recorded.replace("\\", "/")).parts
    if dataset_folder.name in parts:
        local = dataset_folder.joinpath(*parts[parts.index(dataset_folder.name) + 1:])
        if local.resolve().is_relative_to(dataset_folder.resolve()):
            return local
    return None


def _apply_inference_information(models: list[NnunetModelFolder], folder: Path
                                 ) -> tuple[list[NnunetModelFolder], dict | None, list | None]:
    """Models, postprocessing and folds chosen by nnU-Net's ``inference_information.json``, when present."""
    info_path = next((p / INFERENCE_INFORMATION for p in {m.folder.parent for m in models}
                      if (p / INFERENCE_INFORMATION).is_file()), None)
    if info_path is None:
        return models, None, None
    info = _read_json(info_path)
    best = info.get("best_model_or_ensemble") or {}
    selected = [(s.get("trainer"), s.get("plans_identifier"), s.get("configuration"))
                for s in best.get("selected_model_or_models", [])]
    chosen = [m for m in models if (m.trainer, m.plans_name, m.configuration) in selected]
    if len(chosen) != len(selected):
        raise InvalidInputError(f"{INFERENCE_INFORMATION} selects {selected}, not all of which are in the folder",
                                path=info_path)
    postprocessing = None
    recorded = best.get("postprocessing_file")
    if recorded:
        local = _local_copy(str(recorded), info_path.parent)
        json_path = local.with_suffix(".json") if local is not None else None
        if json_path is not None and json_path.is_file():
            postprocessing = translate_postprocessing(json_path)
        else:
            logger.warning("%s names postprocessing %s, but its postprocessing.json is not in the folder: "
                           "predicting WITHOUT nnU-Net's postprocessing", info_path, recorded)
    folds = info.get("folds")
    logger.info("%s: using %s", info_path, [m.folder.name for m in chosen])
    return chosen, postprocessing, list(folds) if isinstance(folds, list) else None


def _own_postprocessing(model: NnunetModelFolder) -> dict | None:
    """A single configuration's cross-validation postprocessing (``crossval_results_folds_*/postprocessing.json``)."""
    found = sorted(model.folder.glob("crossval_results_folds_*/postprocessing.json"))
    if len(found) > 1:
        logger.warning("%s: several postprocessing.json (%s); using %s", model.folder,
                       [p.parent.name for p in found], found[-1].parent.name)
    return translate_postprocessing(found[-1]) if found else None


def import_nnunet_models(source: str | Path, destination: str | Path, configurations: Sequence[str] | None = None,
                         folds: Sequence[int | str] | None = None,
                         checkpoint_name: str | None = None) -> ImportedModels:
    """Convert every (or the chosen) nnU-Net configuration at ``source`` into ``destination``.

    Args:
        source: model folder, dataset results folder with several model folders, or export zip.
        destination: folder that receives the autolung configuration folders.
        configurations: nnU-Net configuration names (or full folder names) to import; None: all.
        folds: folds to import; None: every fold with a checkpoint.
        checkpoint_name: which checkpoint of each fold (None: final, else best).

    Returns:
        The dataset name, the destination and the autolung configuration folder names.
    """
    source, destination = Path(source), Path(destination)
    with contextlib.ExitStack() as stack:
        folder = source
        if source.is_file():
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="autolung-nnunet-")))
            extract_nnunet_zip(source, folder)
        models = _model_folders_in(folder)
        postprocessing, chosen_folds = None, None
        if configurations:
            models = [m for m in models if m.configuration in configurations or m.folder.name in configurations]
        elif len(models) > 1:
            models, postprocessing, chosen_folds = _apply_inference_information(models, folder)
        if not models:
            raise InvalidInputError("no nnU-Net model folder (<trainer>__<plans>__<configuration>/ with plans.json "
                                    "and dataset.json) found" + (f" for {list(configurations)}"
                                                                 if configurations else ""), path=source)
        use_folds = folds if folds is not None else chosen_folds
        names = []
        for model in models:
            target = convert_model_folder(model, destination, use_folds, checkpoint_name)
            own = _own_postprocessing(model)
            if own is not None:
                write_json_atomic(target / "postprocessing.json", own)
            names.append(target.name)
        dataset_name = _dataset_name(destination / names[0])
    return ImportedModels(dataset_name=dataset_name, folder=destination, configurations=names,
                          postprocessing=postprocessing, folds=use_folds)


def _dataset_name(configuration_folder: Path) -> str:
    from autolung.planning.plans import Plans

    name = Plans.load(configuration_folder / "plans.json").dataset_name
    if not name or PurePosixPath(name).name != name or name in (".", ".."):
        raise UnsafeFileError(f"invalid dataset name {name!r} in the nnU-Net plans", path=configuration_folder)
    return name


@contextlib.contextmanager
def opened_nnunet_models(source: str | Path, configurations: Sequence[str] | None = None,
                         folds: Sequence[int | str] | None = None) -> Iterator[ImportedModels]:
    """Import nnU-Net models into a temporary folder for the duration of the block (``predict --model``)."""
    with tempfile.TemporaryDirectory(prefix="autolung-nnunet-model-") as tmp:
        yield import_nnunet_models(source, Path(tmp), configurations, folds)
