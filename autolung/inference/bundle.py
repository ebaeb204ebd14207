"""Trained models as single files: export, verify, extract, install.

A bundle is a zip holding, per configuration folder ``<config>__<planner>/``: ``plans.json``,
``fingerprint.json`` (when present), ``postprocessing.json`` (when chosen), and
``fold_<k>/{checkpoint_final.pt, training_info.json}`` with checkpoints stripped to the network
weights; plus ``inference_choice.json`` (when present) and ``manifest.json`` listing the sha256
of every other file.

Bundles are untrusted. Before anything is used: entries with absolute paths, ``..``, backslashes
or symlink type are refused, every file must be listed in the manifest with a matching checksum
(and nothing unlisted may appear), and every checkpoint must load with ``weights_only=True``.
Extraction goes to a temporary folder first; installation renames it into place.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

import torch

from autolung import __version__
from autolung.errors import InvalidInputError, UnsafeFileError
from autolung.inference.model import (
    CHECKPOINT_NAME,
    POSTPROCESSING_FILE,
    available_folds,
    load_checkpoint,
    parse_fold,
    sorted_folds,
)
from autolung.planning.plans import Plans
from autolung.results import FOLD_PREFIX, TRAINING_INFO_FILE, FoldFolder
from autolung.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".autolung-install-"

MANIFEST = "manifest.json"
IMPORT_RECORD = "imported_from.json"  # written by autolung.nnunet.importer; kept in sync there
BUNDLE_FORMAT = "autolung-model"
CHOICE_FILE = "inference_choice.json"
# Checkpoint keys kept in a bundle: enough to check and load the network, no optimiser state.
KEPT_CHECKPOINT_KEYS = ("format", "version", "autolung_version", "plans_digest", "configuration", "fold",
                        "epoch", "network_weights")
MAX_UNCOMPRESSED_BYTES = 8 * 1024 ** 3  # refuse zip bombs
_CHUNK = 1 << 20


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stripped_checkpoint(path: Path) -> bytes:
    checkpoint = load_checkpoint(path)
    kept = {key: checkpoint[key] for key in KEPT_CHECKPOINT_KEYS if key in checkpoint}
    buffer = io.BytesIO()
    torch.save(kept, buffer)
    return buffer.getvalue()


def _configuration_files(folder: Path, folds: Sequence[int | str]) -> dict[str, bytes]:
    """Bundle members (relative name -> bytes) of one configuration folder."""
    prefix = folder.name
    members: dict[str, bytes] = {}
    if not (folder / "plans.json").is_file():
        raise InvalidInputError("plans.json missing in the trained configuration folder", path=folder)
    for name in ("plans.json", "fingerprint.json", POSTPROCESSING_FILE, IMPORT_RECORD):
        if (folder / name).is_file():
            members[f"{prefix}/{name}"] = (folder / name).read_bytes()
    for fold in folds:
        fold_folder = FoldFolder.of(folder, fold)
        if not fold_folder.is_finished(CHECKPOINT_NAME):
            raise InvalidInputError(f"fold {fold} has no {CHECKPOINT_NAME}", path=fold_folder.path)
        member = f"{prefix}/{fold_folder.path.name}"
        members[f"{member}/{CHECKPOINT_NAME}"] = _stripped_checkpoint(fold_folder.checkpoint(CHECKPOINT_NAME))
        members[f"{member}/{TRAINING_INFO_FILE}"] = fold_folder.training_info_file.read_bytes()
    return members


def export_model(dataset_results: str | Path, configuration_folders: Sequence[str], output_zip: str | Path,
                 folds: Sequence[int | str] | None = None) -> Path:
    """Write a bundle of the given trained configurations.

    Args:
        dataset_results: ``results/<ds>``.
        configuration_folders: folder names such as ``3d_fullres__default``.
        output_zip: the bundle to write (atomically).
        folds: folds to include; None takes every finished fold of each configuration.

    Returns:
        The bundle path.
    """
    dataset_results = Path(dataset_results)
    members: dict[str, bytes] = {}
    configurations = {}
    for name in configuration_folders:
        folder = dataset_results / name
        chosen = sorted_folds([parse_fold(f) for f in folds]) if folds is not None else available_folds(folder)
        if not chosen:
            raise InvalidInputError("no finished folds to export", path=folder)
        members.update(_configuration_files(folder, chosen))
        configurations[name] = {"folds": sorted_folds(chosen), "plans_digest": Plans.load(folder / "plans.json").digest()}
        if (folder / IMPORT_RECORD).is_file():  # provenance of a model imported from nnU-Net
            configurations[name]["imported_from"] = json.loads((folder / IMPORT_RECORD).read_text(encoding="utf-8"))
    if (dataset_results / CHOICE_FILE).is_file():
        members[CHOICE_FILE] = (dataset_results / CHOICE_FILE).read_bytes()
    manifest = {"format": BUNDLE_FORMAT, "version": 1, "autolung_version": __version__,
                "dataset_name": dataset_results.name, "configurations": configurations,
                "files": {name: _sha256_bytes(data) for name, data in sorted(members.items())}}
    with atomic_path(output_zip) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2))
        for name, data in sorted(members.items()):
            archive.writestr(name, data)
    logger.info("exported %s (%d files)", output_zip, len(members))
    return Path(output_zip)


def _check_member_name(info: zipfile.ZipInfo, bundle: Path) -> PurePosixPath:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeFileError(f"bundle entry {name!r} is a symbolic link; refused", path=bundle)
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeFileError(f"bundle entry {name!r} has an absolute or non-POSIX path; refused", path=bundle)
    path = PurePosixPath(name)
    if any(part in ("..", "") for part in path.parts) or path.is_absolute():
        raise UnsafeFileError(f"bundle entry {name!r} escapes the bundle folder; refused", path=bundle)
    return path


def _read_manifest(archive: zipfile.ZipFile, bundle: Path) -> dict:
    try:
        manifest = json.loads(archive.read(MANIFEST).decode("utf-8"))
    except KeyError:
        raise UnsafeFileError(f"not an autolung model bundle ({MANIFEST} missing)", path=bundle) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnsafeFileError(f"{MANIFEST} is not valid JSON ({exc})", path=bundle) from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT \
            or not isinstance(manifest.get("files"), dict):
        raise UnsafeFileError(f"{MANIFEST} is not an autolung model manifest", path=bundle)
    return manifest


def _open_archive(bundle: Path) -> zipfile.ZipFile:
    if not bundle.is_file():
        raise InvalidInputError("model bundle not found", path=bundle)
    try:
        return zipfile.ZipFile(bundle)
    except zipfile.BadZipFile as exc:
        raise UnsafeFileError(f"not a valid zip file ({exc})", path=bundle) from None


def _extract_verified(archive: zipfile.ZipFile, manifest: dict, bundle: Path, target: Path) -> None:
    """Extract every listed entry into ``target`` while hashing; refuse anything unexpected."""
    expected = dict(manifest["files"])
    infos = [i for i in archive.infolist() if i.filename != MANIFEST]
    if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED_BYTES:
        raise UnsafeFileError("bundle would expand beyond the size limit; refused", path=bundle)
    for info in infos:
        relative = _check_member_name(info, bundle)
        if info.is_dir():
            continue
        if info.filename not in expected:
            raise UnsafeFileError(f"bundle entry {info.filename!r} is not in the manifest; refused", path=bundle)
        destination = target.joinpath(*relative.parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with archive.open(info) as source, open(destination, "wb") as sink:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                digest.update(chunk)
                sink.write(chunk)
        if digest.hexdigest() != expected.pop(info.filename):
            raise UnsafeFileError(f"checksum mismatch for {info.filename!r}: the bundle was modified", path=bundle)
    if expected:
        raise UnsafeFileError(f"files listed in the manifest are missing: {sorted(expected)[:5]}", path=bundle)


def _check_checkpoints(folder: Path) -> None:
    # Every fold_* folder, well-named or not: nothing unchecked is left in the extracted bundle.
    for checkpoint in sorted(folder.glob(f"*/{FOLD_PREFIX}*/{CHECKPOINT_NAME}")):
        load_checkpoint(checkpoint)  # weights_only=True: a code-running pickle is refused here


def extract_bundle(bundle: str | Path, target: str | Path) -> dict:
    """Verify ``bundle`` and extract it into the empty or new folder ``target``.

    Args:
        bundle: the model zip.
        target: destination folder (must not exist or be empty).

    Returns:
        The manifest.

    Raises:
        UnsafeFileError: unsafe entries, checksum mismatch, or a checkpoint that is not weights-only.
    """
    bundle, target = Path(bundle), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with _open_archive(bundle) as archive:
        for info in archive.infolist():
            _check_member_name(info, bundle)  # every name checked before a byte is written
        manifest = _read_manifest(archive, bundle)
        _extract_verified(archive, manifest, bundle, target)
    _check_checkpoints(target)
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


@contextlib.contextmanager
def opened_bundle(bundle: str | Path) -> Iterator[Path]:
    """Extract a verified bundle to a temporary folder for the duration of the block."""
    with tempfile.TemporaryDirectory(prefix="autolung-model-") as tmp:
        extract_bundle(bundle, Path(tmp) / "model")
        yield Path(tmp) / "model"


def install_model(bundle: str | Path, results_folder: str | Path, overwrite: bool = False) -> Path:
    """Verify and install a bundle as ``results/<dataset>/``.

    Args:
        bundle: the model zip.
        results_folder: the data root's ``results/``.
        overwrite: replace configuration folders that already exist.

    Returns:
        The dataset's results folder.
    """
    bundle, results_folder = Path(bundle), Path(results_folder)
    results_folder.mkdir(parents=True, exist_ok=True)
    _remove_dead_stagings(results_folder)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=results_folder))
    try:
        manifest = extract_bundle(bundle, staging)
        dataset = str(manifest.get("dataset_name", ""))
        if not dataset or PurePosixPath(dataset).name != dataset or dataset in (".", ".."):
            raise UnsafeFileError(f"invalid dataset name {dataset!r} in the manifest", path=bundle)
        destination = results_folder / dataset
        destination.mkdir(parents=True, exist_ok=True)
        _move_into_place(staging, destination, list(manifest["configurations"]), overwrite, bundle)
        if (staging / CHOICE_FILE).is_file():
            shutil.move(str(staging / CHOICE_FILE), str(destination / CHOICE_FILE))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("installed %s into %s", bundle, destination)
    return destination


def install_nnunet_model(source: str | Path, results_folder: str | Path, overwrite: bool = False,
                         configurations: Sequence[str] | None = None,
                         folds: Sequence[int] | None = None) -> Path:
    """Translate nnU-Net v2 model folder(s) or an export zip and install them as ``results/<dataset>/``.

    Args:
        source: nnU-Net model folder, folder of model folders, or ``nnUNetv2_export_model_to_zip`` zip.
        results_folder: the data root's ``results/``.
        overwrite: replace configuration folders that already exist.
        configurations: nnU-Net configurations to install (None: all found).
        folds: folds to install (None: every fold with a checkpoint).

    Returns:
        The dataset's results folder.
    """
    from autolung.nnunet.importer import import_nnunet_models

    results_folder = Path(results_folder)
    results_folder.mkdir(parents=True, exist_ok=True)
    _remove_dead_stagings(results_folder)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=results_folder))
    try:
        imported = import_nnunet_models(source, staging, configurations, folds)
        destination = results_folder / imported.dataset_name
        destination.mkdir(parents=True, exist_ok=True)
        _move_into_place(staging, destination, imported.configurations, overwrite, Path(source))
        if imported.postprocessing is not None or len(imported.configurations) > 1:
            _write_imported_choice(destination, imported)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("installed nnU-Net model %s into %s", source, destination)
    return destination


def _write_imported_choice(destination: Path, imported) -> None:
    """``inference_choice.json`` for an imported nnU-Net ensemble, so ``predict -d`` uses it as nnU-Net would."""
    from autolung.inference.best_configuration import _configuration_entry
    from autolung.utils.atomic import write_json_atomic

    entries = [_configuration_entry(destination, name) for name in imported.configurations]
    write_json_atomic(destination / CHOICE_FILE, {
        "dataset_name": imported.dataset_name, "configurations": entries,
        "postprocessing": imported.postprocessing or {"rules": []},
        "source": "nnU-Net inference_information.json" if imported.postprocessing else "imported configurations"})


def _remove_dead_stagings(results_folder: Path) -> None:
    """Delete staging folders of installs that were killed (their process is gone)."""
    from autolung.utils.locking import process_alive

    for leftover in results_folder.glob(f"{STAGING_PREFIX}*"):
        pid = leftover.name[len(STAGING_PREFIX):].split("-", 1)[0]
        if leftover.is_dir() and (not pid.isdigit() or not process_alive(int(pid))):
            logger.warning("removing %s, left by an install that was interrupted", leftover)
            shutil.rmtree(leftover, ignore_errors=True)


def _same_tree(a: Path, b: Path) -> bool:
    """True when two folders hold the same relative file names with the same bytes."""
    import filecmp

    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def _move_into_place(staging: Path, destination: Path, names: list[str], overwrite: bool, bundle: Path) -> None:
    for name in names:
        if PurePosixPath(name).name != name or not (staging / name).is_dir():
            raise UnsafeFileError(f"configuration {name!r} of the manifest is not in the bundle", path=bundle)
        if (destination / name).exists() and not overwrite and _same_tree(staging / name, destination / name):
            # Installed before (maybe by a run that was interrupted later): identical, so finish the job.
            logger.info("%s is already installed with identical files", destination / name)
            continue
        if (destination / name).exists() and not overwrite:
            raise InvalidInputError(f"{name} is already installed; set `overwrite` to replace it",
                                    path=destination / name)
    for name in names:
        final = destination / name
        if final.exists():
            shutil.rmtree(final)
        # A rename within one file system: the folder appears complete or not at all.
        (staging / name).rename(final)
