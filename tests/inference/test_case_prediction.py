"""One per-case prediction path: training's final validation and ``predict`` give the same
probabilities for the same preprocessed case and options."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from autolung.inference.case_prediction import (CaseOptions, configuration_levers, network_mirror_axes,
                                                 predict_preprocessed_case, probabilities_to_labels)
from autolung.inference.cv_outputs import load_cv_probabilities
from autolung.inference.levers import resolve_levers
from autolung.inference.model import load_checkpoint, load_trained_model
from autolung.inference.predictor import PredictionOptions, predict_paths
from autolung.io.images import read_image
from autolung.network import build_network
from autolung.planning.plans import InferencePlan
from autolung.preprocessing.case import preprocess_case
from autolung.preprocessing.storage import write_case
from autolung.provenance import PREDICTIONS_RECORD
from autolung.results import FoldFolder
from autolung.training.options import TrainingOptions
from autolung.training.run import FoldInputs
from autolung.training.validation import validate_fold

from conftest import make_case
from .fake_model import tiny_plans, write_fake_model

CASE = "case_003"


def _case_on_disk(tmp_path, plans, configuration: str):
    """A raw CT (other spacing than planned, so it is resampled) and its preprocessed copy as training stores it."""
    image, _ = make_case((12, 30, 26), seed=3, spacing=(3.0, 0.8, 0.8))
    raw = tmp_path / "raw" / f"{CASE}_0000.nii.gz"
    raw.parent.mkdir()
    sitk.WriteImage(image, str(raw))
    array, geometry = read_image(raw)
    data, _, properties = preprocess_case(array, None, geometry, plans, configuration, case_id=CASE)
    write_case(tmp_path / "preprocessed", CASE, data, None, properties)
    return raw, tmp_path / "preprocessed"


@pytest.mark.parametrize("mode, dim, softmax", [("full", 3, False), ("fast", 3, True), ("full", 2, False)])
def test_validation_and_predict_give_the_same_probabilities(tmp_path, data_root, mode, dim, softmax):
    plans = tiny_plans(dim=dim)
    name = next(iter(plans.configurations))
    raw, case_folder = _case_on_disk(tmp_path, plans, name)
    folder = write_fake_model(tmp_path / "model", plans, folds=(0,), bias=0.3, softmax=softmax)
    model = load_trained_model(folder)
    # Validation gets the bare trained network, as training hands it over, and chooses its output layer itself.
    network = build_network(plans.configuration(name).architecture, 1, 2 + int(softmax), deep_supervision=False)
    network.load_state_dict(load_checkpoint(folder / "fold_0" / "checkpoint_final.pt")["network_weights"])

    inputs = FoldInputs(plans=plans, configuration=plans.configuration(name), case_folder=case_folder,
                        train_cases=[], val_cases=[CASE], folder=FoldFolder.from_path(folder / "fold_0"),
                        in_channels=1)
    options = TrainingOptions(validation_mode=mode, precision="float32", device="cpu",
                              loss="ce_dice" if softmax else "bce_dice")
    validation = validate_fold(network, inputs, data_root, "Tiny_CT", torch.device("cpu"), options)
    predict_paths(raw, tmp_path / "predicted", [model],
                  PredictionOptions(mode=mode, device="cpu", precision="float32", save_probabilities=True))

    validated = load_cv_probabilities(validation / f"{CASE}.npz").probabilities
    predicted = load_cv_probabilities(tmp_path / "predicted" / f"{CASE}.npz").probabilities
    assert validated.shape == (2, 12, 30, 26) and validated.std() > 0.01  # not a constant output
    np.testing.assert_array_equal(validated, predicted)
    masks = [sitk.GetArrayFromImage(sitk.ReadImage(str(path / f"{CASE}.nii.gz")))
             for path in (validation, tmp_path / "predicted")]
    np.testing.assert_array_equal(masks[0], masks[1])

    settings = [json.loads((path / PREDICTIONS_RECORD).read_text())["options"]
                for path in (validation, tmp_path / "predicted")]
    # predict records the axes asked for (one record for every model of an ensemble), validation
    # those its one configuration mirrors along; every other setting is the same.
    assert settings[0]["mirror_axes"] == {"full": [0, 1, 2] if dim == 3 else [1, 2], "fast": []}[mode]
    assert {k: v for k, v in settings[0].items() if k != "mirror_axes"} == \
        {k: v for k, v in settings[1].items() if k != "mirror_axes"}


def test_predict_preprocessed_case_mirrors_what_the_configuration_allows():
    plans = tiny_plans(dim=3, scheme="zscore")
    configuration = plans.configuration("3d_fullres")
    torch.manual_seed(0)
    network = torch.nn.Conv3d(1, 2, 3, padding=1)
    data = np.random.default_rng(0).normal(size=(1, 10, 20, 20)).astype(np.float32)
    full = resolve_levers("full", "cpu").levers
    mirrored = predict_preprocessed_case(network, data, configuration, CaseOptions(full))
    configuration.inference = InferencePlan(mirror_axes=[])  # a model trained without mirroring
    unmirrored = predict_preprocessed_case(network, data, configuration, CaseOptions(full))
    no_mirroring = predict_preprocessed_case(network, data, configuration,
                                             CaseOptions(resolve_levers("full", "cpu", mirror_axes=()).levers))
    np.testing.assert_array_equal(unmirrored, no_mirroring)
    assert not np.array_equal(mirrored, unmirrored)
    assert configuration_levers(resolve_levers("full", "cpu"), configuration).levers.mirror_axes == ()


def test_network_mirror_axes_and_labels_in_slabs():
    assert network_mirror_axes((0, 1, 2), dim=2) == (1, 2)
    assert network_mirror_axes((0, 1, 2), dim=3, allowed=[1, 2]) == (1, 2)
    assert network_mirror_axes((0, 2), dim=3) == (0, 2)
    mapping = tiny_plans().region_mapping
    probabilities = np.random.default_rng(1).random((2, 40, 6, 5)).astype(np.float32)
    np.testing.assert_array_equal(probabilities_to_labels(probabilities, mapping),
                                  mapping.probabilities_to_labels(probabilities))


def test_labels_only_prediction_compacts_the_case_and_keeps_float16_probabilities(tmp_path, monkeypatch):
    """The memory-saving path (bfloat16 case, float16 probabilities) gives the masks of the float32 one,
    except where a probability lies at the decision boundary."""
    import autolung.inference.case_prediction as case_prediction
    import autolung.inference.predictor as predictor

    plans = tiny_plans(dim=3)
    raw, _ = _case_on_disk(tmp_path, plans, "3d_fullres")
    model = load_trained_model(write_fake_model(tmp_path / "model", plans, folds=(0,), bias=0.3))
    options = dict(mode="full", device="cpu", precision="bfloat16")
    predict_paths(raw, tmp_path / "reference", [model], PredictionOptions(**options, save_probabilities=True))
    used = {}
    monkeypatch.setattr(case_prediction, "FLOAT16_PROBABILITIES_FROM_BYTES", 0)
    sliding_window = predictor._sliding_window

    def recording(model, data, properties, options, progress, probability_dtype="float32"):
        used.update(input=data.dtype, probabilities=probability_dtype)
        return sliding_window(model, data, properties, options, progress, probability_dtype)

    monkeypatch.setattr(predictor, "_sliding_window", recording)
    predict_paths(raw, tmp_path / "compact", [model], PredictionOptions(**options))
    assert used == {"input": torch.bfloat16, "probabilities": "float16"}
    reference, compact = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name / f"{CASE}.nii.gz")))
                          for name in ("reference", "compact"))
    probabilities = load_cv_probabilities(tmp_path / "reference" / f"{CASE}.npz").probabilities.astype(np.float32)
    differ = reference != compact
    assert differ.mean() <= 1e-3 and (reference > 0).any()
    at_threshold = np.abs(probabilities[:, differ] - 0.5).min(axis=0) < 2e-3
    tied = np.abs(probabilities[0, differ] - probabilities[1, differ]) < 2e-3  # the most probable channel wins
    assert (at_threshold | tied).all()
