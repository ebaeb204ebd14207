"""Plans: typed dataclasses saved as versioned, human-readable JSON.

A planner (see ``planners/``) produces a :class:`Plans`; everything downstream (preprocessing,
training, prediction) reads only this file. Loading validates every field and names the
offending key, so a hand-edited plans.json fails with a clear message.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from autolung import __version__
from autolung.errors import InvalidPlansError
from autolung.labels import RegionMapping
from autolung.output_kind import ACTIVATIONS, SIGMOID_REGIONS
from autolung.utils.atomic import write_json_atomic

PLANS_VERSION = 1
NORMALIZATION_SCHEMES = ("ct", "zscore", "zscore_nonzero", "rescale_0_1", "none")
NETWORK_KINDS = ("unet", "resenc_unet")
OUTPUT_ACTIVATIONS = ACTIVATIONS
WINDOW_WEIGHTS = ("autolung", "nnunet")


@dataclass
class Decision:
    """One planning decision, for ``plan --explain``: what was decided, the value, and why."""

    what: str
    value: Any
    rule: str


@dataclass
class NormalizationPlan:
    """Intensity normalization of one input channel.

    ``ct``: clip to [clip_low, clip_high] (dataset foreground percentiles), then
    (x - mean) / std with the dataset foreground statistics.
    ``zscore``: per-image z-score. ``zscore_nonzero``: per-image z-score inside the nonzero mask,
    zero outside. ``rescale_0_1``: x / 255 for 8-bit images. ``none``: intensities unchanged
    (only models imported from nnU-Net's ``NoNormalization`` use it).
    """

    channel_name: str
    scheme: str
    clip_low: float | None = None
    clip_high: float | None = None
    mean: float | None = None
    std: float | None = None
    reason: str = ""


@dataclass
class ArchitecturePlan:
    """The U-Net topology; ``autolung.network.build_network`` builds it.

    Attributes:
        network: "unet" (plain conv blocks) or "resenc_unet" (residual encoder).
        dim: 2 or 3.
        features_per_stage: channels per resolution stage, e.g. [32, 64, 128, 256, 320, 320].
        strides: per stage, the downsampling stride per axis; stage 0 is all ones.
        kernel_sizes: per stage, the conv kernel per axis (1 along a far coarser axis).
        blocks_per_stage: encoder conv blocks (plain: 2 convs per stage is ``[2, 2, ...]``;
            resenc: residual blocks per stage).
        decoder_convs_per_stage: convs per decoder stage (one entry fewer than stages).
    """

    network: str
    dim: int
    features_per_stage: list[int]
    strides: list[list[int]]
    kernel_sizes: list[list[int]]
    blocks_per_stage: list[int]
    decoder_convs_per_stage: list[int]

    @property
    def num_stages(self) -> int:
        return len(self.features_per_stage)


@dataclass
class InferencePlan:
    """How a configuration's networks are run at inference when that differs from autolung's own way.

    autolung's own models leave this unset (``None`` in :class:`ConfigurationPlan`): one sigmoid
    per region, probabilities averaged. Models imported from nnU-Net v2 set it so that they give
    nnU-Net's results: logits averaged over windows, mirrorings and folds, then softmax (background
    first) or sigmoid; nnU-Net's window weights; only the mirror axes the checkpoint allows; and the
    plans' axis transposition.

    Attributes:
        output_activation: "sigmoid" (one channel per region) or "softmax" (background first): the
            :mod:`autolung.output_kind` of the imported model.
        average_logits: average raw network outputs, apply the activation afterwards.
        window_weights: "autolung" (analytic Gaussian) or "nnunet" (nnU-Net's discrete one).
        mirror_axes: array axes (0=z, 1=y, 2=x, after ``transpose``) allowed for test-time
            mirroring; None allows all, [] none (a model trained without mirroring).
        transpose: axis order the network works in (nnU-Net's ``transpose_forward``); None is (0, 1, 2).
        probability_order_out_of_plane: interpolation order of the probabilities along the
            anisotropic axis when they are restored to the original grid (nnU-Net's
            ``resampling_fn_probabilities_kwargs["order_z"]``, 0: nearest slice); None keeps
            autolung's linear.
    """

    output_activation: str = SIGMOID_REGIONS.activation
    average_logits: bool = False
    window_weights: str = "autolung"
    mirror_axes: list[int] | None = None
    transpose: list[int] | None = None
    probability_order_out_of_plane: int | None = None


@dataclass
class ConfigurationPlan:
    """One configuration (2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres).

    ``spacing`` and ``patch_size`` are in array order (z, y, x). A 2d configuration has a
    2-element patch (y, x) and keeps the slice axis unresampled: its ``spacing[0]`` is the
    median slice spacing and only in-plane spacing is targeted.

    ``previous_stage`` (a cascade): the configuration whose predictions, one-hot encoded, are
    extra input channels. ``data_configuration``: the configuration whose preprocessed cases this
    one reads (the cascade reads 3d_fullres's; None: its own).
    """

    name: str
    dim: int
    spacing: list[float]
    patch_size: list[int]
    batch_size: int
    architecture: ArchitecturePlan
    normalization: list[NormalizationPlan]
    median_shape_after_resampling: list[int]
    resample_order_image: int = 3
    resample_order_image_out_of_plane: int = 0
    resample_order_labels_out_of_plane: int = 0
    anisotropic_axis: int | None = None
    use_nonzero_mask_for_norm: bool = False
    previous_stage: str | None = None
    data_configuration: str | None = None
    decisions: list[Decision] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    inference: InferencePlan | None = None

    @property
    def data_name(self) -> str:
        """The configuration whose preprocessed folder holds this one's cases."""
        return self.data_configuration or self.name


@dataclass
class Plans:
    """Everything autolung needs to preprocess, train and predict a dataset."""

    dataset_name: str
    planner: str
    channel_names: list[str]
    labels: dict[str, int]
    region_mapping: RegionMapping
    configurations: dict[str, ConfigurationPlan]
    gpu_memory_gb: float = 8.0
    file_ending: str = ".nii.gz"
    version: int = PLANS_VERSION
    autolung_version: str = __version__
    # Provenance: the fingerprint these plans were made from (not part of ``digest``).
    fingerprint_digest: str | None = None
    # The configuration to train when none is named, and why (not part of ``digest``: it changes
    # no network); None: :meth:`recommended` falls back to nnU-Net's habit.
    recommended_configuration: Decision | None = None

    def to_json(self) -> dict[str, Any]:
        payload = {
            "version": self.version,
            "autolung_version": self.autolung_version,
            "fingerprint_digest": self.fingerprint_digest,
            "dataset_name": self.dataset_name,
            "planner": self.planner,
            "gpu_memory_gb": self.gpu_memory_gb,
            "file_ending": self.file_ending,
            "channel_names": list(self.channel_names),
            "labels": dict(self.labels),
            "region_mapping": self.region_mapping.to_json(),
            "configurations": {name: _configuration_to_json(cfg) for name, cfg in self.configurations.items()},
        }
        if self.recommended_configuration is not None:  # only written when set: older plans keep their layout
            payload["recommended_configuration"] = asdict(self.recommended_configuration)
        return payload

    def digest(self) -> str:
        """Hash of everything that changes what a network sees; recorded in every artefact."""
        payload = self.to_json()
        for cfg in payload["configurations"].values():
            cfg.pop("decisions", None)
        payload.pop("autolung_version", None)
        payload.pop("fingerprint_digest", None)
        payload.pop("recommended_configuration", None)
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Plans:
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidPlansError("plans file not found", path=path) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidPlansError(f"not valid JSON ({exc})", path=path) from None
        try:
            return cls.from_json(payload)
        except InvalidPlansError as exc:
            raise InvalidPlansError(exc.problem, path=path) from None

    @classmethod
    def from_json(cls, payload: Any) -> Plans:
        _require(isinstance(payload, dict), "the top level must be a JSON object")
        version = payload.get("version")
        _require(version == PLANS_VERSION, f"'version' is {version!r}; this autolung reads version {PLANS_VERSION}")
        configurations = _get(payload, "configurations", dict)
        _require(len(configurations) > 0, "'configurations' is empty")
        region_payload = _get(payload, "region_mapping", dict)
        try:
            region_mapping = RegionMapping.from_json(region_payload)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidPlansError(f"'region_mapping' is invalid ({exc})") from None
        labels = _get(payload, "labels", dict)
        _require(all(isinstance(v, int) for v in labels.values()), "'labels' values must be integers")

        return cls(
            dataset_name=_get(payload, "dataset_name", str),
            planner=_get(payload, "planner", str),
            channel_names=[str(c) for c in _get(payload, "channel_names", list)],
            labels=labels,
            region_mapping=region_mapping,
            configurations={name: _configuration_from_json(name, cfg) for name, cfg in configurations.items()},
            gpu_memory_gb=float(payload.get("gpu_memory_gb", 8.0)),
            file_ending=str(payload.get("file_ending", ".nii.gz")),
            version=version,
            autolung_version=str(payload.get("autolung_version", "unknown")),
            fingerprint_digest=payload.get("fingerprint_digest") if isinstance(payload.get("fingerprint_digest"), str)
            else None,
            recommended_configuration=_recommendation_from_json(payload.get("recommended_configuration"),
                                                                configurations),
        )

    def recommended(self) -> Decision:
        """The configuration to train when none is named: the planner's recommendation, else
        nnU-Net's habit (3d_fullres where planned, else 2d, else the first planned).

        Returns:
            A :class:`Decision` whose value is the configuration name and whose rule says why.
        """
        if self.recommended_configuration is not None:
            return self.recommended_configuration
        for name in ("3d_fullres", "2d"):
            if name in self.configurations:
                return Decision("configuration", name, f"the planner ({self.planner}) recommends none: {name}, "
                                                       f"nnU-Net's usual choice (3d_fullres where planned, else 2d)")
        first = next(iter(self.configurations))
        return Decision("configuration", first, f"the planner ({self.planner}) recommends none: the first planned")

    def configuration(self, name: str) -> ConfigurationPlan:
        if name not in self.configurations:
            raise InvalidPlansError(
                f"configuration {name!r} is not planned; planned: {', '.join(self.configurations)}")
        return self.configurations[name]


def _recommendation_from_json(payload: Any, configurations: dict[str, Any]) -> Decision | None:
    if payload is None:
        return None
    _require(isinstance(payload, dict) and {"what", "value", "rule"} <= set(payload),
             "'recommended_configuration' must be an object with 'what', 'value' and 'rule'")
    _require(payload["value"] in configurations,
             f"'recommended_configuration' names {payload['value']!r}, which is not planned")
    return Decision(str(payload["what"]), str(payload["value"]), str(payload["rule"]))


def _configuration_to_json(configuration: ConfigurationPlan) -> dict[str, Any]:
    payload = asdict(configuration)
    if payload.get("inference") is None:  # only written when set: older plans keep their digest
        payload.pop("inference", None)
    elif payload["inference"].get("probability_order_out_of_plane") is None:  # the same for older imports
        payload["inference"].pop("probability_order_out_of_plane", None)
    return payload


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise InvalidPlansError(problem)


def _get(payload: dict, key: str, kind: type, where: str = "") -> Any:
    if key not in payload:
        raise InvalidPlansError(f"missing key '{where}{key}'")
    value = payload[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidPlansError(f"'{where}{key}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def _int_list(payload: dict, key: str, where: str, length: int | None = None) -> list[int]:
    values = _get(payload, key, list, where)
    _require(all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values),
             f"'{where}{key}' must be a list of positive integers, got {values!r}")
    if length is not None:
        _require(len(values) == length, f"'{where}{key}' must have {length} entries, got {len(values)}")
    return values


def _configuration_from_json(name: str, payload: Any) -> ConfigurationPlan:
    where = f"configurations.{name}."
    _require(isinstance(payload, dict), f"'{where[:-1]}' must be an object")
    dim = _get(payload, "dim", int, where)
    _require(dim in (2, 3), f"'{where}dim' must be 2 or 3, got {dim}")
    patch = _int_list(payload, "patch_size", where, dim)
    spacing = _get(payload, "spacing", list, where)
    _require(len(spacing) == 3 and all(isinstance(v, (int, float)) and v > 0 for v in spacing),
             f"'{where}spacing' must be 3 positive numbers (z, y, x), got {spacing!r}")
    batch_size = _get(payload, "batch_size", int, where)
    _require(batch_size >= 1, f"'{where}batch_size' must be at least 1, got {batch_size}")
    architecture = _architecture_from_json(_get(payload, "architecture", dict, where), dim, patch, where)
    normalization = [_normalization_from_json(n, f"{where}normalization[{i}].")
                     for i, n in enumerate(_get(payload, "normalization", list, where))]
    known = {f.name for f in fields(ConfigurationPlan)}
    unknown = set(payload) - known
    _require(not unknown, f"unknown keys in '{where[:-1]}': {sorted(unknown)}")
    rest = {k: v for k, v in payload.items()
            if k not in {"name", "dim", "patch_size", "spacing", "batch_size", "architecture", "normalization",
                         "decisions", "inference"}}
    decisions = [Decision(**d) for d in payload.get("decisions", []) if isinstance(d, dict)]
    inference = payload.get("inference")
    inference = None if inference is None else _inference_from_json(inference, dim, f"{where}inference.")
    return ConfigurationPlan(name=name, dim=dim, spacing=[float(v) for v in spacing], patch_size=patch,
                             batch_size=batch_size, architecture=architecture, normalization=normalization,
                             decisions=decisions, inference=inference, **rest)


def _inference_from_json(payload: Any, dim: int, where: str) -> InferencePlan:
    _require(isinstance(payload, dict), f"'{where[:-1]}' must be an object")
    known = {f.name for f in fields(InferencePlan)}
    unknown = set(payload) - known
    _require(not unknown, f"unknown keys in '{where[:-1]}': {sorted(unknown)}")
    plan = InferencePlan(**payload)
    _require(plan.output_activation in OUTPUT_ACTIVATIONS,
             f"'{where}output_activation' must be one of {OUTPUT_ACTIVATIONS}, got {plan.output_activation!r}")
    _require(isinstance(plan.average_logits, bool), f"'{where}average_logits' must be true or false")
    _require(plan.window_weights in WINDOW_WEIGHTS,
             f"'{where}window_weights' must be one of {WINDOW_WEIGHTS}, got {plan.window_weights!r}")
    allowed_axes = (1, 2) if dim == 2 else (0, 1, 2)
    _require(plan.mirror_axes is None or (isinstance(plan.mirror_axes, list)
                                          and all(a in allowed_axes for a in plan.mirror_axes)),
             f"'{where}mirror_axes' must be null or a list of axes from {allowed_axes}, got {plan.mirror_axes!r}")
    _require(plan.transpose is None or sorted(plan.transpose) == [0, 1, 2],
             f"'{where}transpose' must be null or a permutation of [0, 1, 2], got {plan.transpose!r}")
    _require(plan.probability_order_out_of_plane in (None, 0, 1),
             f"'{where}probability_order_out_of_plane' must be null, 0 or 1, got "
             f"{plan.probability_order_out_of_plane!r}")
    return plan


def _architecture_from_json(payload: dict, dim: int, patch: list[int], where: str) -> ArchitecturePlan:
    where = f"{where}architecture."
    network = _get(payload, "network", str, where)
    _require(network in NETWORK_KINDS, f"'{where}network' must be one of {NETWORK_KINDS}, got {network!r}")
    features = _int_list(payload, "features_per_stage", where)
    stages = len(features)
    strides = _get(payload, "strides", list, where)
    kernels = _get(payload, "kernel_sizes", list, where)
    for key, value in (("strides", strides), ("kernel_sizes", kernels)):
        _require(len(value) == stages, f"'{where}{key}' must have one entry per stage ({stages})")
        _require(all(isinstance(s, list) and len(s) == dim and all(isinstance(v, int) and v > 0 for v in s)
                     for s in value), f"'{where}{key}' entries must be {dim} positive integers")
    total_stride = [1] * dim
    for stride in strides:
        total_stride = [t * s for t, s in zip(total_stride, stride)]
    _require(all(p % t == 0 for p, t in zip(patch, total_stride)),
             f"patch size {patch} is not divisible by the network's total stride {total_stride}")
    blocks = _int_list(payload, "blocks_per_stage", where, stages)
    decoder = _int_list(payload, "decoder_convs_per_stage", where, stages - 1)
    _require(payload.get("dim", dim) == dim, f"'{where}dim' disagrees with the configuration's dim")
    return ArchitecturePlan(network=network, dim=dim, features_per_stage=features, strides=strides,
                            kernel_sizes=kernels, blocks_per_stage=blocks, decoder_convs_per_stage=decoder)


def _normalization_from_json(payload: Any, where: str) -> NormalizationPlan:
    _require(isinstance(payload, dict), f"'{where[:-1]}' must be an object")
    scheme = _get(payload, "scheme", str, where)
    _require(scheme in NORMALIZATION_SCHEMES, f"'{where}scheme' must be one of {NORMALIZATION_SCHEMES}, got {scheme!r}")
    if scheme == "ct":
        for key in ("clip_low", "clip_high", "mean", "std"):
            _get(payload, key, float, where)
        _require(payload["std"] > 0, f"'{where}std' must be positive")
    known = {f.name for f in fields(NormalizationPlan)}
    unknown = set(payload) - known
    _require(not unknown, f"unknown keys in '{where[:-1]}': {sorted(unknown)}")
    return NormalizationPlan(**payload)
