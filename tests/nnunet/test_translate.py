"""nnU-Net plans -> autolung plans, and nnU-Net weights -> autolung's U-Net, computing the same outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autolung.errors import InvalidPlansError
from autolung.network import build_network
from autolung.nnunet.translate import translate_plans
from autolung.nnunet.weights import convert_state_dict
from tests.nnunet.nnunet_layout import arch_kwargs, dataset_json, network_weights, plans_json, reference_forward


def test_plain_3d_plans_translate_field_by_field() -> None:
    plans = plans_json("3d_fullres", 3, False, [8, 16, 16], [2.5, 0.7, 0.7], transpose=(0, 2, 1))
    translated = translate_plans(plans, dataset_json(), "3d_fullres", mirror_axes=(0, 1, 2))
    configuration = translated.plans.configuration("3d_fullres")
    assert translated.network_class == "PlainConvUNet" and translated.out_channels == 3
    assert configuration.spacing == [2.5, 0.7, 0.7] and configuration.patch_size == [8, 16, 16]
    assert configuration.architecture.network == "unet"
    assert configuration.architecture.features_per_stage == [4, 8, 16]
    assert configuration.architecture.blocks_per_stage == [2, 2, 2]
    assert configuration.architecture.decoder_convs_per_stage == [1, 1]
    norm = configuration.normalization[0]
    assert (norm.scheme, norm.clip_low, norm.clip_high, norm.mean, norm.std) == ("ct", -1000.0, 900.0, -300.0, 350.0)
    inference = configuration.inference
    assert inference.output_activation == "softmax" and inference.average_logits
    assert inference.window_weights == "nnunet" and inference.mirror_axes == [0, 1, 2]
    assert inference.transpose == [0, 2, 1]
    mapping = translated.plans.region_mapping
    assert mapping.regions == ((0,), (1,), (2,)) and mapping.has_background_channel
    assert translated.plans.planner == "nnunet:nnUNetPlans"


def test_2d_mirror_axes_ignore_label_and_no_mirroring() -> None:
    plans = plans_json("2d", 2, False, [16, 16], [0.7, 0.7], scheme="ZScoreNormalization")
    labels = {"background": 0, "lung": 1, "ignore": 2}
    translated = translate_plans(plans, dataset_json(labels, channel="MRI"), "2d", mirror_axes=(0, 1))
    configuration = translated.plans.configuration("2d")
    assert configuration.spacing == [2.5, 0.7, 0.7]  # median slice spacing first
    assert configuration.inference.mirror_axes == [1, 2]  # nnU-Net's 2D axes (y, x) are array axes 1, 2
    assert configuration.normalization[0].scheme == "zscore"
    assert translated.plans.region_mapping.ignore_label == 2 and translated.out_channels == 2
    unmirrored = translate_plans(plans, dataset_json(labels, channel="MRI"), "2d", mirror_axes=None)
    assert unmirrored.plans.configuration("2d").inference.mirror_axes == []


def test_regions_keep_their_order_and_paint_labels() -> None:
    plans = plans_json("3d_fullres", 3, False, [8, 16, 16], [1.0, 1.0, 1.0])
    labels = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}
    translated = translate_plans(plans, dataset_json(labels, regions_class_order=[1, 2, 3]), "3d_fullres", (0, 1, 2))
    mapping = translated.plans.region_mapping
    assert mapping.regions == ((1, 2, 3), (2, 3), (3,)) and mapping.paint_labels == (1, 2, 3)
    assert translated.plans.configuration("3d_fullres").inference.output_activation == "sigmoid"
    assert translated.out_channels == 3


@pytest.mark.parametrize("change, message", [
    (lambda p: p["configurations"]["3d_fullres"]["architecture"].update(
        network_class_name="dynamic_network_architectures.architectures.primus.Primus"), "Primus"),
    (lambda p: p["configurations"]["3d_fullres"]["architecture"].update(
        network_class_name="my_lab.networks.FancyUNet"), "my_lab.networks.FancyUNet"),
    (lambda p: p["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"].update(
        norm_op="torch.nn.modules.batchnorm.BatchNorm3d"), "BatchNorm3d"),
    (lambda p: p["configurations"]["3d_fullres"].update(normalization_schemes=["RescaleTo01Normalization"]),
     "RescaleTo01Normalization"),
    (lambda p: p["configurations"]["3d_fullres"].update(previous_stage="3d_lowres"), "cascade"),
])
def test_what_cannot_be_represented_is_refused_by_name(change, message) -> None:
    plans = plans_json("3d_fullres", 3, False, [8, 16, 16], [2.5, 0.7, 0.7])
    change(plans)
    with pytest.raises(InvalidPlansError, match=message):
        translate_plans(plans, dataset_json(), "3d_fullres", (0, 1, 2))


def test_inherited_configuration_is_resolved() -> None:
    plans = plans_json("3d_fullres", 3, False, [8, 16, 16], [2.5, 0.7, 0.7])
    plans["configurations"]["3d_custom"] = {"inherits_from": "3d_fullres", "batch_size": 5}
    configuration = translate_plans(plans, dataset_json(), "3d_custom", (0, 1, 2)).plans.configuration("3d_custom")
    assert configuration.batch_size == 5 and configuration.patch_size == [8, 16, 16]


@pytest.mark.parametrize("dim, residual", [(2, False), (3, False), (2, True), (3, True)])
def test_mapped_weights_compute_what_the_nnunet_network_computes(dim: int, residual: bool) -> None:
    patch = [8, 16, 16] if dim == 3 else [16, 16]
    kwargs = arch_kwargs(dim, residual, strides=None if dim == 2 else [[1, 1, 1], [1, 2, 2], [2, 2, 2]])
    name = "3d_fullres" if dim == 3 else "2d"
    plans = plans_json(name, dim, residual, patch, [2.5, 0.7, 0.7][-dim:], kwargs=kwargs)
    translated = translate_plans(plans, dataset_json(), name, (0, 1, 2)[:dim])
    weights = network_weights(kwargs, 1, 3, residual, seed=3)
    network = build_network(translated.plans.configuration(name).architecture, 1, 3, deep_supervision=False)
    network.load_state_dict(convert_state_dict(weights), strict=True)
    network.eval()
    x = torch.randn(2, 1, *patch, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference_forward(weights, kwargs, x, residual)
        got = network(x)
    assert got.shape == expected.shape == (2, 3, *patch)
    assert torch.allclose(got, expected, atol=1e-5)


def test_unknown_state_dict_key_is_refused() -> None:
    weights = network_weights(arch_kwargs(2, False), 1, 3, residual=False)
    weights["encoder.attention.0.weight"] = torch.zeros(1)
    with pytest.raises(InvalidPlansError, match="encoder.attention.0.weight"):
        convert_state_dict(weights)


def test_plans_json_round_trip_keeps_old_digests(tmp_path: Path) -> None:
    """Plans without the new optional fields serialise exactly as before (their digest is unchanged)."""
    translated = translate_plans(plans_json("2d", 2, False, [16, 16], [0.7, 0.7]), dataset_json(), "2d", (0, 1))
    payload = translated.plans.to_json()
    payload["configurations"]["2d"].pop("inference")
    from autolung.planning.plans import Plans

    plain = Plans.from_json(json.loads(json.dumps(payload)))
    assert "inference" not in plain.to_json()["configurations"]["2d"]


def test_old_format_plans_as_totalsegmentator_ships_them() -> None:
    """Plans from nnU-Net v2 before 2.4 have no 'architecture' entry; they describe the same U-Net."""
    plans = plans_json("3d_fullres", 3, False, [8, 16, 16], [1.5, 1.5, 1.5])
    config = plans["configurations"]["3d_fullres"]
    new = translate_plans(json.loads(json.dumps(plans)), dataset_json(), "3d_fullres", None)
    del config["architecture"]
    config.update(UNet_class_name="PlainConvUNet", UNet_base_num_features=4, unet_max_num_features=16,
                  n_conv_per_stage_encoder=[2, 2, 2], n_conv_per_stage_decoder=[1, 1],
                  num_pool_per_axis=[2, 2, 2], pool_op_kernel_sizes=[[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                  conv_kernel_sizes=[[3, 3, 3]] * 3)
    old = translate_plans(plans, dataset_json(), "3d_fullres", None)
    assert old.plans.configuration("3d_fullres").architecture == new.plans.configuration("3d_fullres").architecture
    assert old.plans.configuration("3d_fullres").inference.mirror_axes == []  # nnUNetTrainerNoMirroring


def test_probabilities_are_restored_as_nnunet_resamples_its_output() -> None:
    """nnU-Net resamples its output back with order_z 0, the nearest slice along the anisotropic axis:
    the translated plan says so, restoring follows it (ties to the upper slice, as scipy's order 0),
    and imported plans without the field serialise as before."""
    from dataclasses import replace

    import numpy as np

    from autolung.planning.plans import Plans
    from autolung.preprocessing.restore import iter_restored_channels

    plans = plans_json("3d_fullres", 3, False, [8, 16, 16], [1.25, 0.7, 0.7])
    translated = translate_plans(plans, dataset_json(), "3d_fullres", (0, 1, 2)).plans
    configuration = translated.configuration("3d_fullres")
    assert configuration.inference.probability_order_out_of_plane == 0
    # A case of 3 slices of 2.5 mm, predicted on 6 slices of 1.25 mm: every restored slice is a tie.
    probabilities = np.arange(6, dtype=np.float32)[None, :, None, None] * np.ones((1, 6, 4, 4), np.float32) / 10
    properties = {"shape_after_resampling": [6, 4, 4], "shape_after_crop": [3, 4, 4], "shape_before_crop": [3, 4, 4],
                  "crop_bbox": [[0, 3], [0, 4], [0, 4]], "anisotropic_axis": 0}
    nearest = next(iter_restored_channels(probabilities, properties, configuration))[1]
    np.testing.assert_allclose(nearest[:, 0, 0], [0.1, 0.3, 0.5])  # slices 1, 3 and 5, nnU-Net's picks
    linear = next(iter_restored_channels(probabilities, properties, replace(configuration, inference=None)))[1]
    np.testing.assert_allclose(linear[:, 0, 0], [0.05, 0.25, 0.45])  # autolung's own models: linear
    older = replace(configuration, inference=replace(configuration.inference, probability_order_out_of_plane=None))
    payload = replace(translated, configurations={"3d_fullres": older}).to_json()
    assert "probability_order_out_of_plane" not in payload["configurations"]["3d_fullres"]["inference"]
    assert Plans.from_json(payload).configuration("3d_fullres").inference.probability_order_out_of_plane is None
    plans["configurations"]["3d_fullres"]["resampling_fn_probabilities_kwargs"] = {"order": 1, "order_z": 3}
    with pytest.raises(InvalidPlansError, match="order_z"):
        translate_plans(plans, dataset_json(), "3d_fullres", (0, 1, 2))
