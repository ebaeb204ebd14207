"""nnU-Net v2 model folders written from the documented layout, for tests that must not need nnU-Net.

``write_model_folder`` writes ``<trainer>__<plans>__<configuration>/`` with ``plans.json``,
``dataset.json`` and ``fold_<k>/checkpoint_final.pth`` holding the dict keys nnU-Net's trainer
saves. Weights are random tensors under dynamic-network-architectures' state-dict names (with the
``all_modules`` and ``decoder.encoder`` aliases nnU-Net's state dicts carry). ``reference_forward``
computes that network's output straight from those names with ``torch.nn.functional``: an
independent statement of what PlainConvUNet / ResidualEncoderUNet compute.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _conv_norm(weights: dict, prefix: str, in_ch: int, out_ch: int, kernel: list[int], generator: torch.Generator,
               bias: bool = True) -> None:
    shape = (out_ch, in_ch, *kernel)
    weights[f"{prefix}.conv.weight"] = torch.randn(shape, generator=generator) * (2.0 / (in_ch * np.prod(kernel))) ** 0.5
    if bias:
        weights[f"{prefix}.conv.bias"] = torch.randn(out_ch, generator=generator) * 0.1
    weights[f"{prefix}.norm.weight"] = 1 + 0.1 * torch.randn(out_ch, generator=generator)
    weights[f"{prefix}.norm.bias"] = 0.1 * torch.randn(out_ch, generator=generator)
    # nnU-Net's ConvDropoutNormReLU also lists the same tensors under all_modules.<i>.
    weights[f"{prefix}.all_modules.0.weight"] = weights[f"{prefix}.conv.weight"]
    if bias:
        weights[f"{prefix}.all_modules.0.bias"] = weights[f"{prefix}.conv.bias"]
    weights[f"{prefix}.all_modules.1.weight"] = weights[f"{prefix}.norm.weight"]
    weights[f"{prefix}.all_modules.1.bias"] = weights[f"{prefix}.norm.bias"]


def network_weights(arch: dict, in_ch: int, out_ch: int, residual: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights named as nnU-Net's PlainConvUNet / ResidualEncoderUNet state dict names them."""
    generator = torch.Generator().manual_seed(seed)
    features, kernels, strides = arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    weights: dict[str, torch.Tensor] = {}
    previous = in_ch
    if residual:
        _conv_norm(weights, "encoder.stem.convs.0", in_ch, features[0], kernels[0], generator)
        previous = features[0]
    for s, width in enumerate(features):
        if residual:
            for b in range(arch["n_blocks_per_stage"][s]):
                block = f"encoder.stages.{s}.blocks.{b}"
                first_in = previous if b == 0 else width
                _conv_norm(weights, f"{block}.conv1", first_in, width, kernels[s], generator)
                _conv_norm(weights, f"{block}.conv2", width, width, kernels[s], generator)
                if b == 0 and (first_in != width or any(v != 1 for v in strides[s])):
                    index = 1 if any(v != 1 for v in strides[s]) else 0
                    _conv_norm(weights, f"{block}.skip.{index}", first_in, width, [1] * len(kernels[s]), generator,
                               bias=False)
        else:
            for j in range(arch["n_conv_per_stage"][s]):
                _conv_norm(weights, f"encoder.stages.{s}.0.convs.{j}", previous if j == 0 else width, width,
                           kernels[s], generator)
        previous = width
    for key in [k for k in weights if k.startswith("encoder.")]:
        weights[f"decoder.{key}"] = weights[key]  # UNetDecoder keeps a reference to the encoder
    n = len(features)
    for t in range(n - 1):
        level = n - 2 - t
        weights[f"decoder.transpconvs.{t}.weight"] = 0.2 * torch.randn(
            (features[level + 1], features[level], *strides[level + 1]), generator=generator)
        weights[f"decoder.transpconvs.{t}.bias"] = 0.1 * torch.randn(features[level], generator=generator)
        for j in range(arch["n_conv_per_stage_decoder"][t]):
            _conv_norm(weights, f"decoder.stages.{t}.convs.{j}", 2 * features[level] if j == 0 else features[level],
                       features[level], kernels[level], generator)
        weights[f"decoder.seg_layers.{t}.weight"] = 0.3 * torch.randn(
            (out_ch, features[level], *[1] * len(kernels[0])), generator=generator)
        weights[f"decoder.seg_layers.{t}.bias"] = 0.1 * torch.randn(out_ch, generator=generator)
    return weights


def _apply(weights: dict, prefix: str, x: torch.Tensor, stride: list[int], activate: bool = True) -> torch.Tensor:
    weight = weights[f"{prefix}.conv.weight"]
    conv = F.conv3d if weight.ndim == 5 else F.conv2d
    padding = [k // 2 for k in weight.shape[2:]]
    x = conv(x, weight, weights.get(f"{prefix}.conv.bias"), stride=stride, padding=padding)
    x = F.instance_norm(x, weight=weights[f"{prefix}.norm.weight"], bias=weights[f"{prefix}.norm.bias"], eps=1e-5)
    return F.leaky_relu(x, 0.01) if activate else x


def reference_forward(weights: dict, arch: dict, x: torch.Tensor, residual: bool) -> torch.Tensor:
    """Full-resolution logits of the nnU-Net network described by ``arch`` with ``weights``."""
    features, strides = arch["features_per_stage"], arch["strides"]
    dim = x.ndim - 2
    ones = [1] * dim
    skips = []
    if residual:
        x = _apply(weights, "encoder.stem.convs.0", x, ones)
    for s in range(len(features)):
        if residual:
            for b in range(arch["n_blocks_per_stage"][s]):
                block = f"encoder.stages.{s}.blocks.{b}"
                stride = strides[s] if b == 0 else ones
                out = _apply(weights, f"{block}.conv2", _apply(weights, f"{block}.conv1", x, stride), ones, False)
                shortcut = x
                if any(v != 1 for v in stride):
                    pool = F.avg_pool3d if dim == 3 else F.avg_pool2d
                    shortcut = pool(shortcut, kernel_size=stride, stride=stride)
                for index in (0, 1):
                    if f"{block}.skip.{index}.conv.weight" in weights:
                        shortcut = _apply(weights, f"{block}.skip.{index}", shortcut, ones, False)
                x = F.leaky_relu(out + shortcut, 0.01)
        else:
            for j in range(arch["n_conv_per_stage"][s]):
                x = _apply(weights, f"encoder.stages.{s}.0.convs.{j}", x, strides[s] if j == 0 else ones)
        skips.append(x)
    n = len(features)
    up = F.conv_transpose3d if dim == 3 else F.conv_transpose2d
    for t in range(n - 1):
        level = n - 2 - t
        x = up(x, weights[f"decoder.transpconvs.{t}.weight"], weights[f"decoder.transpconvs.{t}.bias"],
               stride=strides[level + 1])
        x = torch.cat((x, skips[level]), dim=1)
        for j in range(arch["n_conv_per_stage_decoder"][t]):
            x = _apply(weights, f"decoder.stages.{t}.convs.{j}", x, ones)
    conv = F.conv3d if dim == 3 else F.conv2d
    return conv(x, weights[f"decoder.seg_layers.{n - 2}.weight"], weights[f"decoder.seg_layers.{n - 2}.bias"])


def arch_kwargs(dim: int, residual: bool, features=(4, 8, 16), kernels=None, strides=None) -> dict:
    """nnU-Net plans ``arch_kwargs`` of a small network (the keys its planners write)."""
    n = len(features)
    kernels = kernels or [[3] * dim] * n
    strides = strides or [[1] * dim] + [[2] * dim] * (n - 1)
    kwargs = {"n_stages": n, "features_per_stage": list(features),
              "conv_op": f"torch.nn.modules.conv.Conv{dim}d", "kernel_sizes": kernels, "strides": strides,
              "n_conv_per_stage_decoder": [1] * (n - 1), "conv_bias": True,
              "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
              "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
              "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    if residual:
        kwargs["n_blocks_per_stage"] = [1] + [2] * (n - 1)
    else:
        kwargs["n_conv_per_stage"] = [2] * n
    return kwargs


def plans_json(configuration: str, dim: int, residual: bool, patch: list[int], spacing: list[float],
               scheme: str = "CTNormalization", transpose=(0, 1, 2), plans_name: str = "nnUNetPlans",
               dataset_name: str = "Dataset999_Test", kwargs: dict | None = None) -> dict:
    """An nnU-Net v2 plans.json with one configuration (keys as nnU-Net's ExperimentPlanner writes them)."""
    network = ("dynamic_network_architectures.architectures.unet."
               + ("ResidualEncoderUNet" if residual else "PlainConvUNet"))
    return {
        "dataset_name": dataset_name, "plans_name": plans_name,
        "original_median_spacing_after_transp": [2.5, 0.7, 0.7], "original_median_shape_after_transp": [12, 32, 32],
        "image_reader_writer": "SimpleITKIO", "transpose_forward": list(transpose),
        "transpose_backward": [int(v) for v in np.argsort(transpose)],
        "configurations": {configuration: {
            "data_identifier": f"{plans_name}_{configuration}", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": patch, "median_image_size_in_voxels": patch, "spacing": spacing,
            "normalization_schemes": [scheme], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "architecture": {"network_class_name": network,
                             "arch_kwargs": kwargs or arch_kwargs(dim, residual),
                             "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
            "batch_dice": True}},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 1200.0, "mean": -300.0, "median": -250.0, "min": -1024.0, "percentile_00_5": -1000.0,
            "percentile_99_5": 900.0, "std": 350.0}},
    }


def dataset_json(labels: dict | None = None, channel: str = "CT", file_ending: str = ".nii.gz", **extra) -> dict:
    return {"channel_names": {"0": channel}, "labels": labels or {"background": 0, "bright": 1, "dark": 2},
            "numTraining": 4, "file_ending": file_ending, **extra}


def checkpoint_dict(weights: dict, plans: dict, dataset: dict, configuration: str, fold: int,
                    mirror_axes=(0, 1, 2), trainer: str = "nnUNetTrainer") -> dict:
    """The dict nnU-Net's ``save_checkpoint`` writes, with the plain types it holds (numpy scalars, a device)."""
    return {
        "network_weights": weights,
        "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.99, "nesterov": True,
                                                           "params": [0, 1]}]},
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float64(0.5), np.float64(0.6)], "ema_fg_dice": [np.float64(0.55)],
                    "dice_per_class_or_region": [[np.float64(0.4), np.float64(0.7)]],
                    "train_losses": [np.float32(-0.3)], "lrs": [0.01], "epoch_start_timestamps": [1.0e9]},
        "_best_ema": np.float64(0.55),
        "current_epoch": 2,
        "init_args": {"plans": plans, "configuration": configuration, "fold": fold, "dataset_json": dataset,
                      "device": torch.device("cpu")},
        "trainer_name": trainer,
        "inference_allowed_mirroring_axes": mirror_axes,
    }


def write_model_folder(parent: Path, configuration: str = "3d_fullres", dim: int = 3, residual: bool = False,
                       patch: list[int] | None = None, spacing: list[float] | None = None, folds=(0,),
                       mirror_axes=(0, 1, 2), trainer: str = "nnUNetTrainer", plans_name: str = "nnUNetPlans",
                       labels: dict | None = None, scheme: str = "CTNormalization", transpose=(0, 1, 2),
                       dataset_extra: dict | None = None, kwargs: dict | None = None,
                       network_class: str | None = None) -> Path:
    """Write ``parent/<trainer>__<plans>__<configuration>/``; returns that folder."""
    patch = patch or ([8, 16, 16] if dim == 3 else [16, 16])
    spacing = spacing or ([2.5, 0.7, 0.7] if dim == 3 else [0.7, 0.7])
    plans = plans_json(configuration, dim, residual, patch, spacing, scheme, transpose, plans_name, kwargs=kwargs)
    if network_class:
        plans["configurations"][configuration]["architecture"]["network_class_name"] = network_class
    dataset = dataset_json(labels, channel="CT" if scheme == "CTNormalization" else "MRI", **(dataset_extra or {}))
    folder = parent / f"{trainer}__{plans_name}__{configuration}"
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    label_values = dataset["labels"]
    regions = any(isinstance(v, list) for v in label_values.values())
    out_ch = (len(label_values) - 1) if regions else len([k for k in label_values if k != "ignore"])
    arch = plans["configurations"][configuration]["architecture"]["arch_kwargs"]
    for fold in folds:
        weights = network_weights(arch, 1, out_ch, residual, seed=fold)
        (folder / f"fold_{fold}").mkdir()
        torch.save(checkpoint_dict(weights, plans, dataset, configuration, fold, mirror_axes, trainer),
                   folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder
