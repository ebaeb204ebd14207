"""nnU-Net v2 ``plans.json`` + ``dataset.json`` -> autolung :class:`~autolung.planning.plans.Plans`.

What is translated (nnU-Net key -> autolung field):

- ``configurations.<c>.spacing`` / ``patch_size`` / ``batch_size`` -> spacing (z, y, x; a 2d
  configuration gets the median slice spacing first), patch size, batch size;
- ``transpose_forward`` -> ``inference.transpose`` (the predictor moves the axes before
  preprocessing and back afterwards);
- ``normalization_schemes`` + ``use_mask_for_norm`` + ``foreground_intensity_properties_per_channel``
  -> one :class:`NormalizationPlan` per channel (CT clip/mean/std, z-score, z-score inside the
  nonzero mask, x/255, none);
- ``resampling_fn_*_kwargs`` orders -> resampling orders (the probabilities' ``order_z`` into the
  inference plan);
- ``architecture`` (``PlainConvUNet`` or ``ResidualEncoderUNet`` and their ``arch_kwargs``, or the
  pre-2.4 keys ``UNet_class_name``, ``UNet_base_num_features``, ... that TotalSegmentator's
  plans use) -> :class:`ArchitecturePlan` (``unet`` or ``resenc_unet``);
- ``dataset.json`` ``labels`` (plain labels, or regions with ``regions_class_order``) and
  ``ignore`` -> the region mapping (softmax models get a background channel; its ``ignore_label``);
- the checkpoint's ``inference_allowed_mirroring_axes`` -> ``inference.mirror_axes``.

Anything else is refused with :class:`~autolung.errors.InvalidPlansError` naming what: other
network classes (Primus, a custom trainer's network), cascades, other preprocessors, label
managers or normalization schemes, and layer options autolung's U-Net does not have.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from autolung.errors import InvalidPlansError
from autolung.labels import RegionMapping
from autolung.output_kind import SIGMOID_REGIONS, SOFTMAX_CLASSES
from autolung.planning.plans import (ArchitecturePlan, ConfigurationPlan, InferencePlan, NormalizationPlan,
                                     Plans)

PLAIN_UNET = "PlainConvUNet"
RESENC_UNET = "ResidualEncoderUNet"
NETWORKS = {PLAIN_UNET: "unet", RESENC_UNET: "resenc_unet"}

# arch_kwargs autolung's U-Net reproduces exactly, with the values it reproduces.
_COMMON_KWARGS = {"n_stages", "features_per_stage", "conv_op", "kernel_sizes", "strides", "n_conv_per_stage_decoder",
                  "conv_bias", "norm_op", "norm_op_kwargs", "dropout_op", "dropout_op_kwargs", "nonlin",
                  "nonlin_kwargs", "deep_supervision"}
_PLAIN_KWARGS = _COMMON_KWARGS | {"n_conv_per_stage", "nonlin_first"}
_RESENC_KWARGS = _COMMON_KWARGS | {"n_blocks_per_stage", "block", "bottleneck_channels", "stem_channels",
                                   "stochastic_depth_p", "squeeze_excitation", "squeeze_excitation_reduction_ratio"}

_NORMALIZATIONS = {"CTNormalization": "ct", "ZScoreNormalization": "zscore", "RGBTo0_1Normalization": "rescale_0_1",
                   "NoNormalization": "none"}


@dataclass
class TranslatedModel:
    """autolung plans for one nnU-Net configuration, with what identifies the source.

    Attributes:
        plans: autolung plans holding exactly one configuration.
        configuration: the configuration name (e.g. "3d_fullres").
        plans_name: nnU-Net's plans identifier (e.g. "nnUNetPlans", "nnUNetResEncUNetMPlans").
        network_class: nnU-Net's network class name.
        in_channels: image channels.
        out_channels: network output channels (background included for softmax models).
    """

    plans: Plans
    configuration: str
    plans_name: str
    network_class: str
    in_channels: int
    out_channels: int


def resolve_configuration(plans: dict[str, Any], name: str) -> dict[str, Any]:
    """One configuration of nnU-Net plans with ``inherits_from`` resolved (parent keys, then own keys).

    Args:
        plans: the loaded ``plans.json``.
        name: configuration name.

    Returns:
        The merged configuration dict.
    """
    configurations = _dict(plans, "configurations", "plans.json")
    chain: list[str] = []
    while True:
        if name not in configurations:
            raise InvalidPlansError(f"configuration {name!r} is not in the nnU-Net plans; "
                                    f"planned: {', '.join(configurations)}")
        if name in chain:
            raise InvalidPlansError(f"configuration {name!r} inherits from itself ({' -> '.join(chain)})")
        chain.append(name)
        parent = configurations[name].get("inherits_from")
        if parent is None:
            break
        name = parent
    merged: dict[str, Any] = {}
    for link in reversed(chain):
        merged.update({k: v for k, v in configurations[link].items() if k != "inherits_from"})
    return merged


def translate_plans(plans: dict[str, Any], dataset: dict[str, Any], configuration: str,
                    mirror_axes: list[int] | tuple[int, ...] | None) -> TranslatedModel:
    """Translate one nnU-Net configuration into autolung plans.

    Args:
        plans: nnU-Net ``plans.json`` content.
        dataset: nnU-Net ``dataset.json`` content.
        configuration: configuration name (e.g. "2d", "3d_fullres").
        mirror_axes: the checkpoint's ``inference_allowed_mirroring_axes`` (network axes; None:
            the model was trained without mirroring and is not mirrored).

    Returns:
        The translated model description.

    Raises:
        InvalidPlansError: naming what autolung cannot represent.
    """
    config = resolve_configuration(plans, configuration)
    _refuse_unsupported_pipeline(config, plans, configuration)
    patch = _positive_ints(config, "patch_size")
    dim = len(patch)
    if dim not in (2, 3):
        raise InvalidPlansError(f"configuration {configuration!r}: patch_size {patch} is neither 2D nor 3D")
    channel_names = _channel_names(dataset)
    mapping, labels, out_channels = _labels(dataset)
    network_class, architecture = _architecture(config, dim, configuration)
    transpose = [int(a) for a in plans.get("transpose_forward", [0, 1, 2])]
    if sorted(transpose) != [0, 1, 2]:
        raise InvalidPlansError(f"transpose_forward {transpose} is not a permutation of (0, 1, 2)")
    inference = InferencePlan(
        output_activation=(SIGMOID_REGIONS if _has_regions(dataset) else SOFTMAX_CLASSES).activation,
        average_logits=True,
        window_weights="nnunet", mirror_axes=_mirror_axes(mirror_axes, dim),
        transpose=None if transpose == [0, 1, 2] else transpose,
        probability_order_out_of_plane=_probability_order_out_of_plane(config, configuration))
    data_kwargs = config.get("resampling_fn_data_kwargs") or {}
    seg_kwargs = config.get("resampling_fn_seg_kwargs") or {}
    plan = ConfigurationPlan(
        name=configuration, dim=dim, spacing=_spacing(config, plans, dim), patch_size=patch,
        batch_size=int(config.get("batch_size", 2)), architecture=architecture,
        normalization=_normalization(config, plans, channel_names, configuration),
        median_shape_after_resampling=_median_shape(config, plans, dim),
        resample_order_image=int(data_kwargs.get("order", 3)),
        resample_order_image_out_of_plane=int(data_kwargs.get("order_z", 0)),
        resample_order_labels_out_of_plane=int(seg_kwargs.get("order_z", 0)),
        inference=inference)
    plans_name = str(plans.get("plans_name", "nnUNetPlans"))
    translated = Plans(dataset_name=str(plans.get("dataset_name") or dataset.get("name") or "nnUNet_model"),
                       planner=f"nnunet:{plans_name}", channel_names=channel_names, labels=labels,
                       region_mapping=mapping, configurations={configuration: plan},
                       file_ending=str(dataset.get("file_ending", ".nii.gz")))
    # A round trip through the JSON validator checks every field as a hand-written plans.json would be.
    translated = Plans.from_json(translated.to_json())
    return TranslatedModel(plans=translated, configuration=configuration, plans_name=plans_name,
                           network_class=network_class, in_channels=len(channel_names), out_channels=out_channels)


def _probability_order_out_of_plane(config: dict, configuration: str) -> int:
    """nnU-Net's order along the anisotropic axis when it resamples its output back (0: nearest slice)."""
    order = (config.get("resampling_fn_probabilities_kwargs") or {}).get("order_z", 0)
    if order not in (0, 1):
        raise InvalidPlansError(f"configuration {configuration!r}: resampling_fn_probabilities_kwargs order_z "
                                f"{order!r} is not supported (0 or 1)")
    return int(order)


def _refuse_unsupported_pipeline(config: dict[str, Any], plans: dict[str, Any], name: str) -> None:
    if config.get("previous_stage"):
        raise InvalidPlansError(f"configuration {name!r} is a cascade stage (previous_stage "
                                f"{config['previous_stage']!r}); cascades are not supported, use 3d_fullres")
    preprocessor = config.get("preprocessor_name", "DefaultPreprocessor")
    if preprocessor != "DefaultPreprocessor":
        raise InvalidPlansError(f"configuration {name!r} uses the preprocessor {preprocessor!r}; "
                                "only DefaultPreprocessor is reproduced")
    manager = plans.get("label_manager", "LabelManager")
    if manager != "LabelManager":
        raise InvalidPlansError(f"label manager {manager!r} is not supported (only LabelManager)")
    for key in ("resampling_fn_data", "resampling_fn_seg", "resampling_fn_probabilities"):
        function = config.get(key, "resample_data_or_seg_to_shape")
        if function != "resample_data_or_seg_to_shape":
            raise InvalidPlansError(f"configuration {name!r}: {key} {function!r} is not supported "
                                    "(only resample_data_or_seg_to_shape)")
        kwargs = config.get(f"{key}_kwargs") or {}
        if kwargs.get("force_separate_z") is not None:
            raise InvalidPlansError(f"configuration {name!r}: {key}_kwargs.force_separate_z "
                                    f"{kwargs['force_separate_z']!r} is not supported (only null)")


def _legacy_architecture(config: dict[str, Any], dim: int, name: str) -> dict[str, Any]:
    """The ``architecture`` entry of plans written by nnU-Net v2 before 2.4 (TotalSegmentator's models).

    Those plans name the class (``UNet_class_name``) and give base features, a feature cap, pooling
    and kernel sizes and convs per stage; the network they describe has conv bias, instance norm
    (eps 1e-5, affine) and LeakyReLU(0.01), the same as the newer plans spell out.
    """
    class_name = config.get("UNet_class_name")
    if class_name not in NETWORKS:
        raise InvalidPlansError(f"configuration {name!r}: old-format plans with UNet_class_name {class_name!r} "
                                f"cannot be represented; supported: {', '.join(NETWORKS)}")
    stages = len(config["n_conv_per_stage_encoder"])
    features = [min(int(config["UNet_base_num_features"]) * 2 ** i, int(config["unet_max_num_features"]))
                for i in range(stages)]
    blocks_key = "n_conv_per_stage" if class_name == PLAIN_UNET else "n_blocks_per_stage"
    return {"network_class_name": class_name, "arch_kwargs": {
        "n_stages": stages, "features_per_stage": features, "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
        "kernel_sizes": config["conv_kernel_sizes"], "strides": config["pool_op_kernel_sizes"],
        blocks_key: config["n_conv_per_stage_encoder"], "n_conv_per_stage_decoder": config["n_conv_per_stage_decoder"],
        "conv_bias": True, "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}}


def _architecture(config: dict[str, Any], dim: int, name: str) -> tuple[str, ArchitecturePlan]:
    if "architecture" not in config and "UNet_class_name" in config:
        architecture = _legacy_architecture(config, dim, name)
    else:
        architecture = _dict(config, "architecture", f"configuration {name!r}")
    class_path = str(architecture.get("network_class_name", ""))
    class_name = class_path.rsplit(".", 1)[-1]
    if class_name not in NETWORKS:
        raise InvalidPlansError(f"network class {class_path!r} cannot be represented by autolung's U-Net; "
                                f"supported: {', '.join(NETWORKS)}")
    kwargs = _dict(architecture, "arch_kwargs", "architecture")
    allowed = _PLAIN_KWARGS if class_name == PLAIN_UNET else _RESENC_KWARGS
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise InvalidPlansError(f"{class_name} arch_kwargs {unknown} are not supported by autolung's U-Net")
    _check_layers(kwargs, dim, class_name)
    features = [int(v) for v in kwargs["features_per_stage"]]
    stages = int(kwargs.get("n_stages", len(features)))
    blocks_key = "n_conv_per_stage" if class_name == PLAIN_UNET else "n_blocks_per_stage"
    plan = ArchitecturePlan(
        network=NETWORKS[class_name], dim=dim, features_per_stage=features,
        strides=[_per_axis(s, dim) for s in kwargs["strides"]],
        kernel_sizes=[_per_axis(k, dim) for k in kwargs["kernel_sizes"]],
        blocks_per_stage=_per_stage(kwargs[blocks_key], stages),
        decoder_convs_per_stage=_per_stage(kwargs["n_conv_per_stage_decoder"], stages - 1))
    if stages != len(features):
        raise InvalidPlansError(f"{class_name}: n_stages {stages} but {len(features)} features_per_stage")
    return class_name, plan


def _check_layers(kwargs: dict[str, Any], dim: int, class_name: str) -> None:
    """Refuse layer options that autolung's ConvNormAct / ResidualBlock do not compute identically."""
    expected = {"conv_op": f"torch.nn.modules.conv.Conv{dim}d",
                "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
                "nonlin": "torch.nn.LeakyReLU"}
    for key, value in expected.items():
        given = str(kwargs.get(key))
        if given.rsplit(".", 1)[-1] != value.rsplit(".", 1)[-1]:
            raise InvalidPlansError(f"{class_name}: {key} {given!r} is not supported (autolung uses {value})")
    if kwargs.get("conv_bias") is not True:
        raise InvalidPlansError(f"{class_name}: conv_bias {kwargs.get('conv_bias')!r} is not supported (only true)")
    norm = kwargs.get("norm_op_kwargs") or {}
    if not math.isclose(float(norm.get("eps", 1e-5)), 1e-5) or norm.get("affine", True) is not True:
        raise InvalidPlansError(f"{class_name}: norm_op_kwargs {norm} are not supported (eps 1e-5, affine)")
    if kwargs.get("dropout_op") is not None:
        raise InvalidPlansError(f"{class_name}: dropout_op {kwargs['dropout_op']!r} is not supported")
    slope = (kwargs.get("nonlin_kwargs") or {}).get("negative_slope", 1e-2)
    if not math.isclose(float(slope), 1e-2):
        raise InvalidPlansError(f"{class_name}: LeakyReLU negative_slope {slope} is not supported (only 0.01)")
    if kwargs.get("nonlin_first"):
        raise InvalidPlansError(f"{class_name}: nonlin_first is not supported")
    if class_name == RESENC_UNET:
        block = str(kwargs.get("block", "BasicBlockD")).rsplit(".", 1)[-1]
        if block != "BasicBlockD":
            raise InvalidPlansError(f"{class_name}: block {block!r} is not supported (only BasicBlockD)")
        for key in ("bottleneck_channels", "squeeze_excitation"):
            if kwargs.get(key):
                raise InvalidPlansError(f"{class_name}: {key} {kwargs[key]!r} is not supported")
        stem = kwargs.get("stem_channels")
        if stem is not None and int(stem) != int(kwargs["features_per_stage"][0]):
            raise InvalidPlansError(f"{class_name}: stem_channels {stem} differs from the first stage's features")


def _per_axis(value: Any, dim: int) -> list[int]:
    values = [int(value)] * dim if isinstance(value, int) else [int(v) for v in value]
    if len(values) != dim:
        raise InvalidPlansError(f"kernel or stride {value!r} does not have {dim} entries")
    return values


def _per_stage(value: Any, stages: int) -> list[int]:
    return [int(value)] * stages if isinstance(value, int) else [int(v) for v in value]


def _channel_names(dataset: dict[str, Any]) -> list[str]:
    channels = dataset.get("channel_names", dataset.get("modality"))
    if not isinstance(channels, dict) or not channels:
        raise InvalidPlansError("dataset.json has no 'channel_names'")
    return [str(channels[key]) for key in sorted(channels, key=int)]


def _has_regions(dataset: dict[str, Any]) -> bool:
    return any(isinstance(v, (list, tuple)) and len(v) > 1 for v in dataset.get("labels", {}).values())


def _labels(dataset: dict[str, Any]) -> tuple[RegionMapping, dict[str, int], int]:
    """Region mapping (with the ignore label), label names and output channels, in nnU-Net's channel order."""
    labels = _dict(dataset, "labels", "dataset.json")
    ignore = labels.get("ignore")
    if ignore is not None and not isinstance(ignore, int):
        raise InvalidPlansError(f"dataset.json: the ignore label must be one integer, got {ignore!r}")
    named = {k: v for k, v in labels.items() if k != "ignore"}
    if not _has_regions(dataset):
        values = sorted(int(v if isinstance(v, int) else v[0]) for v in named.values())
        if values != list(range(len(values))):
            raise InvalidPlansError(f"dataset.json labels {values} must be consecutive from 0")
        # Softmax over background and every label: channel i is label i.
        mapping = RegionMapping(tuple((v,) for v in values), tuple(values), ignore)
        names = {k: int(v if isinstance(v, int) else v[0]) for k, v in named.items()}
        return mapping, names, len(values)
    order = dataset.get("regions_class_order")
    regions = [(k, (v,) if isinstance(v, int) else tuple(int(x) for x in v)) for k, v in named.items()
               if k != "background" and (v if isinstance(v, int) else list(v)) not in (0, [0])]
    if not isinstance(order, list) or len(order) != len(regions):
        raise InvalidPlansError(f"dataset.json: regions need 'regions_class_order' with {len(regions)} entries")
    mapping = RegionMapping(tuple(r for _, r in regions), tuple(int(v) for v in order), ignore)
    names = {"background": 0, **{name: int(paint) for (name, _), paint in zip(regions, order)}}
    return mapping, names, len(regions)


def _mirror_axes(axes: list[int] | tuple[int, ...] | None, dim: int) -> list[int]:
    """nnU-Net's network axes -> autolung array axes (a 2D network's axes 0, 1 are y, x)."""
    if axes is None:
        return []
    offset = 1 if dim == 2 else 0
    result = sorted({int(a) + offset for a in axes})
    if any(a > 2 or a < offset for a in result):
        raise InvalidPlansError(f"inference_allowed_mirroring_axes {list(axes)} do not fit a {dim}D network")
    return result


def _spacing(config: dict[str, Any], plans: dict[str, Any], dim: int) -> list[float]:
    spacing = [float(v) for v in config.get("spacing", [])]
    if len(spacing) != dim or min(spacing, default=0) <= 0:
        raise InvalidPlansError(f"configuration spacing {spacing} must be {dim} positive numbers")
    if dim == 2:
        # The slice axis is never resampled in 2d; autolung keeps the median slice spacing there.
        median = plans.get("original_median_spacing_after_transp") or [1.0, 1.0, 1.0]
        spacing = [float(median[0]), *spacing]
    return spacing


def _median_shape(config: dict[str, Any], plans: dict[str, Any], dim: int) -> list[int]:
    shape = [int(v) for v in config.get("median_image_size_in_voxels", [])]
    if dim == 2 and len(shape) == 2:
        median = plans.get("original_median_shape_after_transp") or [1, 1, 1]
        shape = [int(median[0]), *shape]
    return shape or [1, 1, 1]


def _normalization(config: dict[str, Any], plans: dict[str, Any], channel_names: list[str],
                   name: str) -> list[NormalizationPlan]:
    schemes = config.get("normalization_schemes") or []
    masks = config.get("use_mask_for_norm") or [False] * len(schemes)
    if len(schemes) != len(channel_names) or len(masks) != len(schemes):
        raise InvalidPlansError(f"configuration {name!r}: {len(schemes)} normalization scheme(s) for "
                                f"{len(channel_names)} channel(s)")
    properties = plans.get("foreground_intensity_properties_per_channel") or {}
    result = []
    for index, (channel, scheme, use_mask) in enumerate(zip(channel_names, schemes, masks)):
        kind = _NORMALIZATIONS.get(str(scheme).rsplit(".", 1)[-1])
        if kind is None:
            raise InvalidPlansError(f"normalization scheme {scheme!r} of channel {channel!r} is not supported; "
                                    f"supported: {', '.join(_NORMALIZATIONS)}")
        reason = f"nnU-Net {scheme}" + (" with use_mask_for_norm" if use_mask else "")
        if kind == "ct":
            stats = properties.get(str(index))
            if not isinstance(stats, dict):
                raise InvalidPlansError(f"CTNormalization of channel {index} needs "
                                        f"foreground_intensity_properties_per_channel['{index}']")
            result.append(NormalizationPlan(channel, "ct", clip_low=float(stats["percentile_00_5"]),
                                            clip_high=float(stats["percentile_99_5"]), mean=float(stats["mean"]),
                                            std=float(stats["std"]), reason=reason))
        else:
            if kind == "zscore" and use_mask:
                kind = "zscore_nonzero"
            result.append(NormalizationPlan(channel, kind, reason=reason))
    return result


def _dict(payload: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = payload.get(key)
    if not isinstance(value, dict):
        raise InvalidPlansError(f"{where}: '{key}' missing or not an object")
    return value


def _positive_ints(payload: dict[str, Any], key: str) -> list[int]:
    values = payload.get(key)
    if not isinstance(values, list) or not all(isinstance(v, int) and v > 0 for v in values):
        raise InvalidPlansError(f"'{key}' must be a list of positive integers, got {values!r}")
    return values
