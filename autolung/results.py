"""The results layout: one trained fold's folder, its files and its ``training_info.json``.

``results/<Dataset>/<config>__<planner>/fold_<k>/`` (or ``fold_all``) holds::

    checkpoint_{latest,best,final}.pt   training_info.json   training_log.jsonl   progress.png
    validation/                         previous_stage/ (cascade stages)

This module owns those names: every other module asks a :class:`FoldFolder` for a path, for
whether a fold is finished or resumable, and for its :class:`TrainingInfo`, instead of spelling
``fold_<k>`` or ``checkpoint_final.pt`` itself. The same layout is used inside model bundles and
for imported nnU-Net models.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from autolung.errors import InvalidInputError
from autolung.utils.atomic import write_json_atomic

FOLD_PREFIX = "fold_"
FOLD_ALL = "all"
CHECKPOINT_FILES = {"final": "checkpoint_final.pt", "best": "checkpoint_best.pt", "latest": "checkpoint_latest.pt",
                    "weight_ema": "checkpoint_weight_ema.pt"}
FINAL_CHECKPOINT = CHECKPOINT_FILES["final"]
BEST_CHECKPOINT = CHECKPOINT_FILES["best"]
LATEST_CHECKPOINT = CHECKPOINT_FILES["latest"]
WEIGHT_EMA_CHECKPOINT = CHECKPOINT_FILES["weight_ema"]
TRAINING_INFO_FILE = "training_info.json"
TRAINING_LOG_FILE = "training_log.jsonl"
PROGRESS_PLOT_FILE = "progress.png"
VALIDATION_FOLDER = "validation"
PREVIOUS_STAGE_FOLDER = "previous_stage"
# Version 1 added the version key itself; files without it (version 0) read the same way.
TRAINING_INFO_VERSION = 1

Fold = int | str


def parse_fold(value: int | str) -> Fold:
    """A fold as given by a user: a whole number, or ``"all"``.

    Args:
        value: e.g. ``0``, ``"3"`` or ``"all"``.

    Returns:
        The fold as an ``int``, or ``"all"``.

    Raises:
        InvalidInputError: anything else.
    """
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    if text == FOLD_ALL:
        return FOLD_ALL
    raise InvalidInputError(f"fold {value!r} is neither a whole number nor 'all'")


def fold_folder_name(fold: Fold) -> str:
    """``fold_<k>`` or ``fold_all``.

    Returns:
        The folder name.
    """
    return f"{FOLD_PREFIX}{parse_fold(fold)}"


def checkpoint_file(checkpoint: str) -> str:
    """The file name of checkpoint ``"final"``, ``"best"`` or ``"latest"``.

    Raises:
        InvalidInputError: any other name.
    """
    if checkpoint not in CHECKPOINT_FILES:
        raise InvalidInputError(f"checkpoint must be one of {', '.join(CHECKPOINT_FILES)}, got {checkpoint!r}")
    return CHECKPOINT_FILES[checkpoint]


@dataclass(frozen=True)
class TrainingInfo:
    """``training_info.json``: what a fold was trained from and what its network looks like.

    Every field is optional when reading, so older and partial files load; the writers fill them
    all. Keys this class does not know (a fine-tuning report, an nnU-Net import's origin) are kept
    in ``extra`` and written back at the top level.

    Attributes:
        configuration: e.g. "3d_fullres".
        planner: the planner name of the plans.
        fold: the fold number or "all".
        plans_digest: digest of the plans the fold was trained with.
        in_channels: network input channels (image channels plus cascade one-hot channels).
        out_channels: network output channels.
        autolung_version: the version that wrote the file.
        loss: "bce_dice" or "ce_dice" (absent in files of imported models).
        output_activation: "sigmoid", "softmax" or "logits"; None in files older than the loss choice.
        output_kind: "sigmoid_regions" or "softmax_classes" (:mod:`autolung.output_kind`); None in older files.
        extra: every other key, as read.
    """

    configuration: str | None = None
    planner: str | None = None
    fold: Fold | None = None
    plans_digest: str | None = None
    in_channels: int | None = None
    out_channels: int | None = None
    autolung_version: str | None = None
    loss: str | None = None
    output_activation: str | None = None
    output_kind: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("configuration", "planner", "plans_digest", "autolung_version", "loss", "output_activation",
                     "output_kind"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidInputError(f"training info `{name}` must be a string, got {value!r}")
        for name in ("in_channels", "out_channels"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidInputError(f"training info `{name}` must be a positive whole number, got {value!r}")
        if self.fold is not None:
            object.__setattr__(self, "fold", parse_fold(self.fold))

    @classmethod
    def from_json(cls, payload: object, path: Path | None = None) -> TrainingInfo:
        """Read a ``training_info.json`` payload of any version up to :data:`TRAINING_INFO_VERSION`.

        Raises:
            InvalidInputError: not an object, a newer version, or a field of the wrong type.
        """
        if not isinstance(payload, dict):
            raise InvalidInputError("training info is not a JSON object", path=path)
        version = payload.get("training_info_version", 0)
        if not isinstance(version, int) or version > TRAINING_INFO_VERSION:
            raise InvalidInputError(f"training info version {version!r} is newer than this autolung reads "
                                    f"({TRAINING_INFO_VERSION}); update autolung", path=path)
        known = {f.name for f in fields(cls)} - {"extra"}
        try:
            return cls(**{k: v for k, v in payload.items() if k in known},
                       extra={k: v for k, v in payload.items() if k not in known and k != "training_info_version"})
        except InvalidInputError as exc:
            raise InvalidInputError(exc.problem, path=path) from None

    def to_json(self) -> dict[str, Any]:
        """The JSON object: the version, the fields that are set, then ``extra``."""
        payload: dict[str, Any] = {"training_info_version": TRAINING_INFO_VERSION}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name != "extra" and value is not None:
                payload[item.name] = value
        return {**payload, **{k: v for k, v in self.extra.items() if k not in payload}}

    def with_extra(self, values: Mapping[str, Any]) -> TrainingInfo:
        """A copy with ``values`` added to (or replacing keys of) ``extra``."""
        return replace(self, extra={**self.extra, **values})


@dataclass(frozen=True)
class FoldFolder:
    """One fold's folder of a trained configuration: its files, state and training info.

    Attributes:
        path: the ``fold_<k>`` folder (it need not exist yet).
        fold: the fold number or "all".
    """

    path: Path
    fold: Fold

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "fold", parse_fold(self.fold))

    @classmethod
    def of(cls, configuration_folder: str | Path, fold: int | str) -> FoldFolder:
        """The fold ``fold`` of a trained configuration folder (``results/<ds>/<config>__<planner>``)."""
        return cls(Path(configuration_folder) / fold_folder_name(fold), fold)

    @classmethod
    def from_path(cls, path: str | Path) -> FoldFolder | None:
        """The fold folder at ``path``, or None when its name is not ``fold_<k>``/``fold_all``."""
        path = Path(path)
        suffix = path.name.removeprefix(FOLD_PREFIX)
        if not path.name.startswith(FOLD_PREFIX) or not (suffix.isdigit() or suffix == FOLD_ALL):
            return None
        return cls(path, suffix)

    @property
    def is_numbered(self) -> bool:
        """A cross-validation fold (not fold ``all``, which trains on every case)."""
        return isinstance(self.fold, int)

    @property
    def configuration_folder(self) -> Path:
        return self.path.parent

    def checkpoint(self, name: str = "final") -> Path:
        """The checkpoint ``"final"``, ``"best"`` or ``"latest"``, or a file name such as
        ``"checkpoint_final.pt"``."""
        return self.path / (CHECKPOINT_FILES[name] if name in CHECKPOINT_FILES else name)

    @property
    def final_checkpoint(self) -> Path:
        return self.path / FINAL_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.path / BEST_CHECKPOINT

    @property
    def latest_checkpoint(self) -> Path:
        return self.path / LATEST_CHECKPOINT

    @property
    def training_info_file(self) -> Path:
        return self.path / TRAINING_INFO_FILE

    @property
    def training_log_file(self) -> Path:
        return self.path / TRAINING_LOG_FILE

    @property
    def progress_plot(self) -> Path:
        return self.path / PROGRESS_PLOT_FILE

    @property
    def validation_folder(self) -> Path:
        return self.path / VALIDATION_FOLDER

    @property
    def previous_stage_folder(self) -> Path:
        return self.path / PREVIOUS_STAGE_FOLDER

    def is_finished(self, checkpoint_name: str = FINAL_CHECKPOINT) -> bool:
        """Training ran to the end: the fold holds ``checkpoint_name`` (the final checkpoint)."""
        return self.checkpoint(checkpoint_name).is_file()

    def is_resumable(self) -> bool:
        """An interrupted (or finished) run left ``checkpoint_latest.pt`` to continue from."""
        return self.latest_checkpoint.is_file()

    def read_training_info(self) -> TrainingInfo:
        """The fold's ``training_info.json``.

        Raises:
            InvalidInputError: the file is missing, not JSON, or not a training info.
        """
        path = self.training_info_file
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInputError(f"{TRAINING_INFO_FILE} missing in the fold folder", path=path) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"not valid JSON ({exc})", path=path) from None
        return TrainingInfo.from_json(payload, path)

    def training_info_or_none(self) -> TrainingInfo | None:
        """The training info, or None when the file is missing or unreadable (for status checks)."""
        try:
            return self.read_training_info()
        except (OSError, InvalidInputError):
            return None

    def trained_plans_digest(self) -> str | None:
        """The plans digest recorded in the training info; None when there is none to read."""
        info = self.training_info_or_none()
        return info.plans_digest if info is not None else None

    def write_training_info(self, info: TrainingInfo) -> None:
        """Write ``training_info.json`` atomically (the folder is created)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.training_info_file, info.to_json())


def fold_folders(configuration_folder: str | Path, numbered_only: bool = False) -> list[FoldFolder]:
    """The fold folders of a trained configuration folder, in name order.

    Args:
        configuration_folder: ``results/<ds>/<config>__<planner>`` (or the same layout elsewhere).
        numbered_only: leave out fold ``all`` (its validation cases were also trained on).

    Returns:
        The folders named ``fold_<k>`` (and ``fold_all``) that exist.
    """
    found = [FoldFolder.from_path(child) for child in sorted(Path(configuration_folder).glob(f"{FOLD_PREFIX}*"))]
    return [f for f in found if f is not None and f.path.is_dir() and (f.is_numbered or not numbered_only)]
