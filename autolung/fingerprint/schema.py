"""``fingerprint.json`` as typed objects: what planners read, validated as it is built.

The file stays the same human-readable JSON (version :data:`FINGERPRINT_VERSION`). Values are
kept exactly as read (no number conversion) and keys this schema does not type are kept in
``extra``, so ``Fingerprint.from_json(payload).to_json() == payload`` for every file autolung
wrote: the fingerprint digest recorded in plans.json stays the same.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from autolung.errors import InvalidInputError
from autolung.labels import RegionMapping

FINGERPRINT_VERSION = 1
# Written before the typed fields, as fingerprint_dataset always did (provenance first).
_LEADING_EXTRA = ("autolung_version", "plans_digest")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _split(cls: type, payload: Mapping[str, Any], what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``payload`` as (keyword arguments of ``cls``, the other keys); refuses a non-object."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError(f"{what} is not a JSON object: {payload!r}")
    known = {f.name for f in fields(cls)} - {"extra"}
    return ({k: v for k, v in payload.items() if k in known},
            {k: v for k, v in payload.items() if k not in known})


def _typed_json(instance: object, leading: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The set fields of a dataclass with ``extra`` (``leading`` first, ``extra`` after the fields)."""
    payload: dict[str, Any] = dict(leading or {})
    for item in fields(instance):
        value = getattr(instance, item.name)
        if item.name == "extra" or value is None:
            continue
        payload[item.name] = value.to_json() if hasattr(value, "to_json") else _plain(value)
    payload.update({k: v for k, v in instance.extra.items() if k not in payload})
    return payload


def _plain(value: Any) -> Any:
    """Tuples back to JSON lists, nested objects to their JSON."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "to_json"):
        return value.to_json()
    return value


def _numbers(value: object, name: str, length: int | None = None) -> tuple:
    if not isinstance(value, (list, tuple)) or not all(_is_number(v) for v in value):
        raise InvalidInputError(f"fingerprint `{name}` must be a list of numbers, got {value!r}")
    if length is not None and len(value) != length:
        raise InvalidInputError(f"fingerprint `{name}` must have {length} values, got {value!r}")
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class IntensityStatistics:
    """Foreground intensity statistics of one channel, pooled over the dataset's cases."""

    mean: float
    std: float
    median: float | None = None
    min: float | None = None
    max: float | None = None
    percentile_00_5: float
    percentile_99_5: float
    num_samples: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name != "extra" and value is not None and not _is_number(value):
                raise InvalidInputError(f"fingerprint intensity `{item.name}` must be a number, got {value!r}")

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> IntensityStatistics:
        known, extra = _split(cls, payload, "foreground intensity statistics")
        try:
            return cls(**known, extra=extra)
        except TypeError as exc:
            raise InvalidInputError(f"foreground intensity statistics incomplete ({exc})") from None

    def to_json(self) -> dict[str, Any]:
        return _typed_json(self)


@dataclass(frozen=True, kw_only=True)
class ValueRange:
    """Smallest and largest value of one channel over the dataset, and whether all are whole numbers."""

    min: float | None = None
    max: float | None = None
    integer: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> ValueRange:
        known, extra = _split(cls, payload, "value range")
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        return _typed_json(self)

    @property
    def is_eight_bit(self) -> bool:
        """Whole numbers within [0, 255] (an unknown bound counts as outside)."""
        low = -1 if self.min is None else self.min
        high = 256 if self.max is None else self.max
        return bool(self.integer) and low >= 0 and high <= 255


@dataclass(frozen=True, kw_only=True)
class CaseFingerprint:
    """One training case: its geometry (typed) and its statistics (``extra``, as written).

    Attributes:
        case_id: the case identifier.
        spacing: voxel spacing (z, y, x) in mm.
        shape: image shape (z, y, x).
        shape_after_crop: shape after cropping to the nonzero region.
        relative_size_after_crop: cropped voxels / all voxels.
        extra: intensities, value ranges, class fractions, components, format, as written.
    """

    case_id: str
    spacing: tuple[float, ...]
    shape: tuple[int, ...] | None = None
    shape_after_crop: tuple[int, ...]
    relative_size_after_crop: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.case_id, str):
            raise InvalidInputError(f"fingerprint case id must be a string, got {self.case_id!r}")
        object.__setattr__(self, "spacing", _numbers(self.spacing, f"cases[{self.case_id}].spacing", 3))
        object.__setattr__(self, "shape_after_crop",
                           _numbers(self.shape_after_crop, f"cases[{self.case_id}].shape_after_crop", 3))
        if self.shape is not None:
            object.__setattr__(self, "shape", _numbers(self.shape, f"cases[{self.case_id}].shape", 3))

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> CaseFingerprint:
        known, extra = _split(cls, payload, "fingerprint case")
        try:
            return cls(**known, extra=extra)
        except TypeError as exc:
            raise InvalidInputError(f"fingerprint case {payload.get('case_id')!r} incomplete ({exc})") from None

    def to_json(self) -> dict[str, Any]:
        return _typed_json(self)


@dataclass(frozen=True, kw_only=True)
class Fingerprint:
    """A dataset's fingerprint (``fingerprint.json``), as the planners read it.

    Fields are declared in the order ``fingerprint_dataset`` writes them; optional ones are None
    when a file lacks them (the planning rules then use their documented defaults).

    Attributes:
        dataset_name: the dataset folder's name.
        channel_names: one name per image channel ("CT", ...).
        labels: label name -> value (or values, for regions).
        region_mapping: the network's output regions.
        file_ending: the dataset's image file ending.
        is_2d: every case is a 2D image.
        num_cases: number of training cases.
        median_relative_size_after_crop: median of the cases' cropped / full size.
        foreground_intensity: per channel, pooled foreground statistics (None: no foreground).
        value_range: per channel, the value range over all cases.
        cases: one :class:`CaseFingerprint` per training case.
        fingerprint_version: the file format version.
        extra: provenance and every key not typed here, as written.
    """

    fingerprint_version: int = FINGERPRINT_VERSION
    dataset_name: str
    channel_names: tuple[str, ...]
    labels: Mapping[str, int | list[int]]
    region_mapping: RegionMapping
    file_ending: str | None = None
    is_2d: bool | None = None
    num_cases: int
    component_connectivity: str | None = None
    component_size_unit: str | None = None
    file_formats: tuple[str, ...] | None = None
    median_spacing: tuple[float, ...] | None = None
    median_shape: tuple[float, ...] | None = None
    median_shape_after_crop: tuple[float, ...] | None = None
    median_relative_size_after_crop: float | None = None
    foreground_intensity: tuple[IntensityStatistics | None, ...] | None = None
    value_range: tuple[ValueRange, ...] | None = None
    class_fractions: Mapping[str, float] | None = None
    lesion_sizes: Mapping[str, Any] | None = None
    cases: tuple[CaseFingerprint, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fingerprint_version != FINGERPRINT_VERSION:
            raise InvalidInputError(f"not a version-{FINGERPRINT_VERSION} autolung fingerprint")
        if not isinstance(self.dataset_name, str):
            raise InvalidInputError(f"fingerprint `dataset_name` must be a string, got {self.dataset_name!r}")
        if not isinstance(self.channel_names, (list, tuple)) or not all(isinstance(n, str) for n in self.channel_names):
            raise InvalidInputError(f"fingerprint `channel_names` must be a list of names, got {self.channel_names!r}")
        if isinstance(self.num_cases, bool) or not isinstance(self.num_cases, int) or self.num_cases < 0:
            raise InvalidInputError(f"fingerprint `num_cases` must be a whole number, got {self.num_cases!r}")
        if not self.cases:
            raise InvalidInputError("fingerprint has no cases")
        object.__setattr__(self, "channel_names", tuple(self.channel_names))
        object.__setattr__(self, "cases", tuple(self.cases))
        for name in ("file_formats", "median_spacing", "median_shape", "median_shape_after_crop",
                     "foreground_intensity", "value_range"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))

    @classmethod
    def from_json(cls, payload: object, path: str | Path | None = None) -> Fingerprint:
        """Build from a ``fingerprint.json`` payload (as read, or as ``fingerprint_dataset`` made it).

        Raises:
            InvalidInputError: a wrong version, a missing or ill-typed field (naming ``path``).
        """
        try:
            if not isinstance(payload, Mapping) or payload.get("fingerprint_version") != FINGERPRINT_VERSION:
                raise InvalidInputError(f"not a version-{FINGERPRINT_VERSION} autolung fingerprint")
            known, extra = _split(cls, payload, "fingerprint")
            if "region_mapping" in known:
                known["region_mapping"] = RegionMapping.from_json(known["region_mapping"])
            if known.get("foreground_intensity") is not None:
                known["foreground_intensity"] = [None if s is None else IntensityStatistics.from_json(s)
                                                 for s in known["foreground_intensity"]]
            if known.get("value_range") is not None:
                known["value_range"] = [ValueRange.from_json(r) for r in known["value_range"]]
            if isinstance(known.get("cases"), list):
                known["cases"] = [CaseFingerprint.from_json(c) for c in known["cases"]]
            return cls(**known, extra=extra)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.problem, path=path) from None
        except (TypeError, KeyError, ValueError) as exc:
            raise InvalidInputError(f"not a valid fingerprint ({type(exc).__name__}: {exc})", path=path) from None

    @classmethod
    def coerce(cls, fingerprint: Fingerprint | Mapping[str, Any]) -> Fingerprint:
        """``fingerprint`` itself, or built from its JSON payload (planners accept either)."""
        return fingerprint if isinstance(fingerprint, Fingerprint) else cls.from_json(fingerprint)

    @classmethod
    def load(cls, path: str | Path) -> Fingerprint:
        """Read ``fingerprint.json``.

        Raises:
            InvalidInputError: missing, not JSON, or not a valid version-1 fingerprint.
        """
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInputError("fingerprint not found (run `autolung fingerprint` first)", path=path) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"fingerprint is not valid JSON ({exc})", path=path) from None
        return cls.from_json(payload, path)

    def to_json(self) -> dict[str, Any]:
        """The ``fingerprint.json`` payload (equal to the one this was read from)."""
        leading = {"fingerprint_version": self.fingerprint_version,
                   **{k: self.extra[k] for k in _LEADING_EXTRA if k in self.extra}}
        return _typed_json(self, leading)

    def intensity(self, channel: int) -> IntensityStatistics | None:
        """Foreground statistics of ``channel``; None when the fingerprint has none for it."""
        stats = self.foreground_intensity or ()
        return stats[channel] if channel < len(stats) else None

    def channel_value_range(self, channel: int) -> ValueRange:
        """The value range of ``channel`` (all bounds unknown when the fingerprint has none)."""
        ranges = self.value_range or ()
        return ranges[channel] if channel < len(ranges) else ValueRange()

    @property
    def spacings(self) -> list[tuple[float, ...]]:
        """Every case's spacing, in case order."""
        return [case.spacing for case in self.cases]

    @property
    def shapes_after_crop(self) -> list[tuple[int, ...]]:
        """Every case's nonzero-cropped shape, in case order."""
        return [case.shape_after_crop for case in self.cases]
