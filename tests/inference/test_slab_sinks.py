"""Slab sinks: labels painted as the slabs finish equal the labels of the whole-volume probabilities."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from typer.testing import CliRunner

from autolung.inference import levers
from autolung.inference.slab_sinks import BodyRestriction, Destination, LabelSink, ProbabilitySink
from autolung.inference.sliding_window import predict_sliding_window, predict_sliding_window_labels
from autolung.labels import RegionMapping
from autolung_cli.app import _register_commands, app

from .fake_model import tiny_plans, write_fake_model
from .test_levers import PATCH, _write, chest_phantom, normalized, tiny_network

_register_commands()
runner = CliRunner()
SIGMOID = RegionMapping.one_per_label([1, 2])
NESTED = RegionMapping(((1, 2), (2,)), (1, 2))


def _cut_phantom() -> np.ndarray:
    image = chest_phantom(shape=(13, 56, 56))
    image[3, 24:32, :] = 40.0  # a slice the field of view may cut: left unrestricted
    return image


@pytest.mark.parametrize("mapping", [SIGMOID, NESTED], ids=["disjoint", "nested"])
@pytest.mark.parametrize("lever_set", [
    {},
    {"step_size": 0.75, "crop_to_body": True, "skip_empty_windows": True, "restrict_to_body": True},
    {"crop_to_body": True, "restrict_to_body": True},
])
def test_labels_painted_from_slabs_equal_labels_of_the_probabilities(mapping, lever_set):
    network = tiny_network()
    data, threshold = normalized(_cut_phantom())
    options = dict(mirror_axes=(2,), body_threshold=threshold, **lever_set)
    probabilities = predict_sliding_window(network, data, PATCH, **options)
    labels = predict_sliding_window_labels(network, data, PATCH, mapping, **options)
    assert labels.dtype == np.uint8 and labels.shape == data.shape[1:]
    np.testing.assert_array_equal(labels, mapping.probabilities_to_labels(probabilities))
    assert len(np.unique(labels)) == 3


def test_softmax_2d_and_padded_volumes_paint_the_same_labels():
    torch.manual_seed(1)
    network = torch.nn.Sequential(torch.nn.Conv3d(1, 3, 3, padding=1))
    softmax = RegionMapping(((0,), (1,), (2,)), (0, 1, 2))  # background channel: the most probable wins
    data = np.random.default_rng(0).normal(size=(1, 5, 11, 9)).astype(np.float32)  # smaller than the patch
    options = dict(average_logits=True, output_activation="softmax", mirror_axes=(1,))
    labels = predict_sliding_window_labels(network, data, PATCH, softmax, **options)
    np.testing.assert_array_equal(labels, softmax.probabilities_to_labels(
        predict_sliding_window(network, data, PATCH, **options)))
    planar = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1))
    data = np.random.default_rng(1).normal(size=(1, 4, 20, 18)).astype(np.float32)
    np.testing.assert_array_equal(predict_sliding_window_labels(planar, data, (16, 16), SIGMOID),
                                  SIGMOID.probabilities_to_labels(predict_sliding_window(planar, data, (16, 16))))


def test_labels_take_no_probability_dtype():
    data = np.zeros((1, 8, 16, 16), dtype=np.float32)
    with pytest.raises(ValueError, match="probability_dtype"):
        predict_sliding_window_labels(tiny_network(), data, PATCH, SIGMOID, probability_dtype="float16")


def test_tile_writer_drops_padding_moves_slabs_and_restricts_to_the_body(caplog):
    body = np.zeros((6, 4, 5), dtype=bool)
    body[:, 1:3, 1:4] = True
    body[2, 1:3, :] = True  # touches both side borders: left unrestricted
    sink = ProbabilitySink((6, 4, 5), np.dtype(np.float32))
    with caplog.at_level(logging.WARNING):
        restriction = BodyRestriction(body)
    assert "1 slices' body touches the image border" in caplog.text
    # A tile of the volume's box z 1-5, y 1-4, x 0-5, padded by one slice before and one column after.
    write = Destination(sink, (1, 1, 0), restriction).writer((slice(1, 5), slice(0, 3), slice(0, 5)))
    write(0, np.full((2, 3, 3, 6), 0.7, dtype=np.float32))  # tile slices 0-2: slice 0 is padding
    write(3, np.full((2, 3, 3, 6), 0.9, dtype=np.float32))  # tile slices 3-5: slice 5 is padding
    out = sink.result()
    assert out.shape == (2, 6, 4, 5)
    expected = np.zeros((6, 4, 5), dtype=np.float32)
    expected[1:3, 1:4] = 0.7
    expected[3:5, 1:4] = 0.9
    expected[~body] = 0.0
    expected[2, 1:4] = 0.7  # the open-field slice keeps what was predicted
    np.testing.assert_array_equal(out[0], expected)
    labels = LabelSink((6, 4, 5), SIGMOID)
    labels.write((slice(0, 2), slice(0, 4), slice(0, 5)), np.stack([np.full((2, 4, 5), 0.6), np.full((2, 4, 5), 0.8)]))
    assert (labels.result()[:2] == 2).all() and (labels.result()[2:] == 0).all()


def test_predict_paints_labels_without_a_probability_volume_when_nothing_is_resampled(tmp_path, data_root,
                                                                                        monkeypatch):
    """Through the CLI: the case on its network grid takes the label sink, with the mask of the saved
    float32 probabilities, voxel for voxel, in full and fast mode."""
    import autolung.inference.predictor as predictor

    monkeypatch.setattr(levers, "MIN_BODY_SECTION_MM", 30.0)  # the 39 mm phantom counts as a body section
    results = data_root.results_dataset("Tiny_CT")
    write_fake_model(results / "3d_fullres__default", tiny_plans(), folds=(0,), bias=0.1)
    images = tmp_path / "images"
    images.mkdir()
    _write(chest_phantom(), images / "c0_0000.nii.gz")  # tiny_plans' spacing: the network grid is the image grid
    probability_volumes = []
    sliding_window = predictor._sliding_window

    def recording(*args, **kwargs):
        probability_volumes.append(1)
        return sliding_window(*args, **kwargs)

    monkeypatch.setattr(predictor, "_sliding_window", recording)
    common = ["-i", str(images), "-d", "Tiny_CT", "-c", "3d_fullres", "--no-progress", "--root", str(data_root.root)]
    for mode in ("full", "fast"):
        labels_only = tmp_path / f"{mode}_labels"
        result = runner.invoke(app, ["predict", "-o", str(labels_only), "--mode", mode, *common])
        assert result.exit_code == 0, result.output
        assert probability_volumes == []
        saved = tmp_path / f"{mode}_saved"
        result = runner.invoke(app, ["predict", "-o", str(saved), "--mode", mode, "--save-probabilities", *common])
        assert result.exit_code == 0, result.output
        probability_volumes.clear()
        painted, reference = (sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "c0.nii.gz")))
                              for folder in (labels_only, saved))
        np.testing.assert_array_equal(painted, reference)
        assert set(np.unique(painted)) == {0, 1, 2}
