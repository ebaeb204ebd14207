"""Prediction modes and levers: body crop and window skipping keep geometry and values exact."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from typer.testing import CliRunner

from autolung.inference import levers
from autolung.inference.case_prediction import CaseOptions, predict_preprocessed_case
from autolung.inference.levers import (
    MODE_LEVERS,
    body_box,
    body_mask,
    body_threshold,
    is_whole_body_ct,
    resolve_levers,
)
from autolung.inference.predictor import PredictionOptions
from autolung.inference.sliding_window import predict_sliding_window
from autolung.inference.window_grid import window_starts
from autolung_cli.app import _register_commands, app

from .fake_model import tiny_plans, write_fake_model

_register_commands()
runner = CliRunner()
PATCH = (8, 16, 16)
SPACING = (2.5, 0.7, 0.7)  # tiny_plans' spacing: the network grid is the image grid


def chest_phantom(shape=(12, 56, 56), seed: int = 0) -> np.ndarray:
    """HU volume: air around an elliptic body (soft tissue) holding two dark lungs and a tumour."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    cy, cx = shape[1] / 2, shape[2] / 2 + 4
    image = np.full(shape, -1000.0) + rng.normal(0, 10, shape)
    body = ((y - cy) / 14) ** 2 + ((x - cx) / 16) ** 2 <= 1
    image[body] = 40 + rng.normal(0, 20, int(body.sum()))
    for side in (-7, 7):
        lung = ((y - cy) / 9) ** 2 + ((x - cx - side) / 5) ** 2 <= 1
        image[lung] = -850 + rng.normal(0, 30, int(lung.sum()))
    image[4:7, int(cy) - 2:int(cy) + 2, int(cx) + 6:int(cx) + 9] = 30
    return image.astype(np.float32)


def normalized(image: np.ndarray) -> tuple[np.ndarray, float]:
    plan = tiny_plans().configurations["3d_fullres"].normalization[0]
    data = (np.clip(image, plan.clip_low, plan.clip_high) - plan.mean) / plan.std
    return data[None].astype(np.float32), body_threshold([plan])


def tiny_network(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv3d(4, 2, 3, padding=1))


def covered_only_by(windows: list[tuple[slice, ...]], shape) -> np.ndarray:
    count = np.zeros(shape, dtype=int)
    for window in windows:
        count[window] += 1
    return count


def test_modes_resolve_to_their_levers_and_overrides_win():
    full = resolve_levers("full", "cpu").levers
    assert (full.step_size, full.mirror_axes, full.crop_to_body, full.skip_empty_windows) == (0.5, (0, 1, 2),
                                                                                              False, False)
    fast = resolve_levers("fast", "cpu", step_size=0.6, mirror_axes=[2])
    assert fast.levers.step_size == 0.6 and fast.levers.mirror_axes == (2,) and fast.levers.crop_to_body
    assert "set explicitly" in fast.explain() and "mode fast" in fast.explain()
    auto = resolve_levers("auto", "cuda")
    assert auto.mode == "full" and "GPU" in auto.explain()
    on_cpu = resolve_levers("auto", "cpu")
    assert on_cpu.mode == "fast" and "mode auto on cpu: fast" in on_cpu.explain()
    not_ct = resolve_levers("auto", "cpu", whole_body_ct=False)
    assert not_ct.mode == "full" and "measured on whole-body CT only" in not_ct.explain()
    with pytest.raises(ValueError, match="mode"):
        resolve_levers("quick", "cpu")
    with pytest.raises(ValueError, match="mirror_axes"):
        resolve_levers("full", "cpu", mirror_axes=[3])
    # The old options spelling still means what it meant.
    assert PredictionOptions(mode="full", mirror=False).levers().levers.mirror_axes == ()
    assert PredictionOptions(mode="fast", mirror=True).levers().levers.mirror_axes == (0, 1, 2)


def test_body_mask_fills_the_lungs_and_the_box_reaches_a_patch():
    image = chest_phantom()
    data, threshold = normalized(image)
    mask = body_mask(data[0], threshold)
    lung_voxel = (6, 28, 25)
    assert image[lung_voxel] < -500 and mask[lung_voxel]
    assert not mask[:, 0, 0].any()
    box = body_box(mask, PATCH)
    assert all(s.stop - s.start >= p for s, p in zip(box, PATCH))
    assert mask[tuple(box)].sum() == mask.sum()
    tiny = np.zeros((12, 56, 56), dtype=bool)
    tiny[5, 30, 30] = True
    assert [s.stop - s.start for s in body_box(tiny, PATCH, margin=0)] == list(PATCH)
    assert body_box(np.zeros((4, 4, 4), dtype=bool), PATCH) is None


def test_window_skipping_is_exact_where_only_run_windows_reach():
    data, threshold = normalized(chest_phantom())
    network = tiny_network()
    full = predict_sliding_window(network, data, PATCH, mirror_axes=None)
    skipped = predict_sliding_window(network, data, PATCH, mirror_axes=None, body_threshold=threshold,
                                     skip_empty_windows=True)
    assert skipped.shape == full.shape
    mask = body_mask(data[0], threshold)
    windows = window_starts(data.shape[1:], PATCH, 0.5)
    ran = [w for w in windows if mask[w].any()]
    assert 0 < len(ran) < len(windows)
    exact = covered_only_by(ran, mask.shape) == covered_only_by(windows, mask.shape)
    assert exact[mask].all()  # every body voxel gets the full tiling's value
    np.testing.assert_array_equal(skipped[:, exact], full[:, exact])
    never = covered_only_by(ran, mask.shape) == 0
    assert never.any() and (skipped[:, never] == 0).all()


def test_body_crop_keeps_the_shape_and_is_exact_on_the_crop():
    data, threshold = normalized(chest_phantom())
    network = tiny_network()
    cropped = predict_sliding_window(network, data, PATCH, mirror_axes=(2,), body_threshold=threshold,
                                     crop_to_body=True)
    assert cropped.shape == (2, *data.shape[1:])
    box = body_box(body_mask(data[0], threshold), PATCH)
    assert [s.stop - s.start for s in box] != list(data.shape[1:])
    alone = predict_sliding_window(network, data[(slice(None), *box)], PATCH, mirror_axes=(2,))
    np.testing.assert_array_equal(cropped[(slice(None), *box)], alone)
    outside = np.ones(data.shape[1:], dtype=bool)
    outside[box] = False
    assert (cropped[:, outside] == 0).all()


def test_body_levers_without_ct_intensities_tile_everything(caplog):
    data = np.random.default_rng(0).normal(size=(1, 8, 20, 20)).astype(np.float32)
    network = tiny_network()
    full = predict_sliding_window(network, data, PATCH, mirror_axes=None)
    with caplog.at_level(logging.WARNING):
        levers = predict_sliding_window(network, data, PATCH, mirror_axes=None, body_threshold=None,
                                        crop_to_body=True, skip_empty_windows=True)
    np.testing.assert_array_equal(levers, full)
    assert "whole volume is tiled" in caplog.text


def _write(image: np.ndarray, path) -> sitk.Image:
    itk = sitk.GetImageFromArray(image.astype(np.int16))
    itk.SetSpacing(tuple(reversed(SPACING)))
    itk.SetOrigin((-12.5, 30.0, 4.0))
    itk.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(itk, str(path))
    return sitk.ReadImage(str(path))  # NIfTI keeps float32 spacing: compare with what was written


def test_cli_modes_keep_the_input_geometry_and_skipping_matches_full(tmp_path, data_root, caplog, monkeypatch):
    monkeypatch.setattr(levers, "MIN_BODY_SECTION_MM", 30.0)  # the 39 mm phantom counts as a body section
    results = data_root.results_dataset("Tiny_CT")
    write_fake_model(results / "3d_fullres__default", tiny_plans(), folds=(0,), bias=0.1)
    images = tmp_path / "images"
    images.mkdir()
    phantom = chest_phantom()
    source = _write(phantom, images / "c0_0000.nii.gz")
    common = ["-i", str(images), "-d", "Tiny_CT", "-c", "3d_fullres", "--no-progress",
              "--root", str(data_root.root)]
    masks = {}
    runs = {"full": ["--mode", "full"], "fast": ["--mode", "fast"],
            "skip": ["--mode", "full", "--skip-empty-windows"], "body": ["--mode", "full", "--restrict-to-body"]}
    for name, extra in runs.items():
        with caplog.at_level(logging.INFO):
            result = runner.invoke(app, ["predict", "-o", str(tmp_path / name), *common, *extra])
        assert result.exit_code == 0, result.output
        mask = sitk.ReadImage(str(tmp_path / name / "c0.nii.gz"))
        assert mask.GetSize() == source.GetSize() and mask.GetSpacing() == source.GetSpacing()
        assert mask.GetOrigin() == source.GetOrigin() and mask.GetDirection() == source.GetDirection()
        masks[name] = sitk.GetArrayFromImage(mask)
    assert "prediction mode full" in caplog.text and "prediction mode fast" in caplog.text
    assert "skip_empty_windows=True" in caplog.text
    data, threshold = normalized(phantom)
    mask = body_mask(data[0], threshold)
    windows = window_starts(mask.shape, PATCH, 0.5)
    ran = [w for w in windows if mask[w].any()]
    exact = covered_only_by(ran, mask.shape) == covered_only_by(windows, mask.shape)
    assert len(np.unique(masks["full"][exact])) == 3  # background and both labels where it must match
    np.testing.assert_array_equal(masks["skip"][exact], masks["full"][exact])
    assert (masks["skip"][covered_only_by(ran, mask.shape) == 0] == 0).all()
    assert (masks["full"][~mask] > 0).any() and (masks["body"][~mask] == 0).all()
    np.testing.assert_array_equal(masks["body"][mask], masks["full"][mask])
    assert "restrict_to_body=True" in caplog.text


def test_cli_rejects_bad_mirror_axes(tmp_path, data_root):
    result = runner.invoke(app, ["predict", "-i", str(tmp_path), "-o", str(tmp_path / "o"), "--mirror-axes", "q",
                                 "--root", str(data_root.root), "-d", "Tiny_CT"])
    assert result.exit_code != 0
    assert "--mirror-axes" in result.output or "--mirror-axes" in str(result.exception)


def test_background_outside_the_body_except_on_slices_the_field_of_view_cuts(caplog):
    network = tiny_network()
    data, threshold = normalized(chest_phantom())
    plain = predict_sliding_window(network, data, PATCH, mirror_axes=None)
    restricted = predict_sliding_window(network, data, PATCH, mirror_axes=None, body_threshold=threshold,
                                        restrict_to_body=True)
    mask = body_mask(data[0], threshold)
    np.testing.assert_array_equal(restricted[:, mask], plain[:, mask])
    assert (plain[:, ~mask] > 0).all() and (restricted[:, ~mask] == 0).all()
    cut = chest_phantom()
    cut[3, 24:32, :] = 40.0  # tissue reaching both side borders: this slice may be cut by the field of view
    data, threshold = normalized(cut)
    plain = predict_sliding_window(network, data, PATCH, mirror_axes=None)
    with caplog.at_level(logging.WARNING):
        restricted = predict_sliding_window(network, data, PATCH, mirror_axes=None, body_threshold=threshold,
                                            restrict_to_body=True)
    assert "1 slices' body touches the image border" in caplog.text
    np.testing.assert_array_equal(restricted[:, 3], plain[:, 3])
    assert (restricted[:, 4][:, ~body_mask(data[0], threshold)[4]] == 0).all()


def test_body_levers_stay_off_on_crops_and_fast_is_the_cpu_default_only_for_whole_body_ct(caplog):
    configuration = tiny_plans().configurations["3d_fullres"]
    data, _ = normalized(chest_phantom())  # 56 x 0.7 mm = 39 mm: a crop, not a body section
    network = tiny_network()
    with caplog.at_level(logging.INFO):
        fast = predict_preprocessed_case(network, data, configuration, CaseOptions(MODE_LEVERS["fast"]))
    assert "body levers off" in caplog.text
    plain = predict_sliding_window(network, data, PATCH, step_size=0.75, mirror_axes=None)
    np.testing.assert_array_equal(fast, plain)
    assert not is_whole_body_ct(configuration)
    whole = type(configuration)(**{**configuration.__dict__, "median_shape_after_resampling": [40, 400, 400]})
    assert is_whole_body_ct(whole)
    # A 2D model of whole sections counts too (its windows are slices of the same volume).
    assert is_whole_body_ct(type(whole)(**{**whole.__dict__, "dim": 2}))
    crop_2d = {**whole.__dict__, "dim": 2, "median_shape_after_resampling": [40, 50, 50]}
    assert not is_whole_body_ct(type(whole)(**crop_2d))


def test_fast_mode_restricts_to_the_body_at_three_quarters_of_a_patch():
    fast = MODE_LEVERS["fast"]
    assert (fast.step_size, fast.mirror_axes, fast.crop_to_body, fast.skip_empty_windows,
            fast.restrict_to_body) == (0.75, (), True, True, True)
    assert not MODE_LEVERS["full"].restrict_to_body
    assert not resolve_levers("fast", "cpu", restrict_to_body=False).levers.restrict_to_body
    assert "restrict_to_body=True" in resolve_levers("fast", "cpu").explain()


def test_full_mode_is_every_mirroring_at_half_a_patch():
    assert MODE_LEVERS["full"].mirror_axes == (0, 1, 2) and MODE_LEVERS["full"].step_size == 0.5


def test_bfloat16_input_gives_the_same_body_and_prediction_as_float32_data():
    from autolung.inference.sliding_window import window_input

    data, threshold = normalized(chest_phantom())
    options = dict(mirror_axes=None, precision="bfloat16", body_threshold=threshold, crop_to_body=True,
                   skip_empty_windows=True, restrict_to_body=True, step_size=0.75)
    expected = predict_sliding_window(tiny_network(), data, PATCH, **options)
    result = predict_sliding_window(tiny_network(), window_input(data, "bfloat16"), PATCH, **options)
    np.testing.assert_array_equal(result, expected)
    assert (result == 0).any() and (result > 0).any()


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_kept_logits_activate_to_the_probabilities_and_hold_background_where_nothing_ran(activation):
    from autolung.output_kind import output_kind_for_activation

    kind = output_kind_for_activation(activation)
    network = tiny_network()
    data, threshold = normalized(chest_phantom())
    options = dict(mirror_axes=(2,), weights="nnunet", average_logits=True, output_activation=activation,
                   body_threshold=threshold, crop_to_body=True, skip_empty_windows=True, restrict_to_body=True)
    probabilities = predict_sliding_window(network, data, PATCH, **options)
    logits = predict_sliding_window(network, data, PATCH, keep_logits=True, **options)
    assert logits.shape == probabilities.shape and np.isfinite(logits).all()
    mask = body_mask(data[0], threshold)
    activated = kind.probabilities(torch.from_numpy(logits), channel_axis=0).numpy()
    np.testing.assert_allclose(activated[:, mask], probabilities[:, mask], atol=1e-6)
    # Outside the body: certain background, where the probabilities say 0 for every channel.
    np.testing.assert_array_equal(logits[:, ~mask], np.broadcast_to(kind.background_logits(2)[:, None],
                                                                     (2, int((~mask).sum()))))
    assert (activated[-1, ~mask] == 0).all() and (probabilities[:, ~mask] == 0).all()
    with pytest.raises(ValueError, match="keep_logits needs average_logits"):
        predict_sliding_window(network, data, PATCH, keep_logits=True)
