"""``predict --model`` and ``install_model`` with nnU-Net v2 model folders and zips, through the Typer app."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from typer.testing import CliRunner

from autolung_cli.app import _register_commands, app
from conftest import make_case, shared_dataset
from tests.nnunet.nnunet_layout import write_model_folder

_register_commands()
runner = CliRunner()


def _case(folder: Path) -> Path:
    folder.mkdir()
    image, _ = make_case((12, 32, 32), seed=0)
    sitk.WriteImage(image, str(folder / "c0_0000.nii.gz"))
    return folder / "c0_0000.nii.gz"


def _predict(*args: str) -> None:
    result = runner.invoke(app, ["predict", "--no-progress", *args])
    assert result.exit_code == 0, result.output


def _same_geometry(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    assert np.allclose(a.GetSpacing(), b.GetSpacing())
    assert np.allclose(a.GetOrigin(), b.GetOrigin())
    assert np.allclose(a.GetDirection(), b.GetDirection())


def test_predict_with_an_nnunet_folder_keeps_geometry_and_argmax(tmp_path: Path) -> None:
    model = write_model_folder(tmp_path / "Dataset999_Test", folds=(0, 1))
    image_path = _case(tmp_path / "images")
    _predict("-i", str(image_path.parent), "-o", str(tmp_path / "out"), "--model", str(model),
             "--save-probabilities", "--disable-tta")
    mask = sitk.ReadImage(str(tmp_path / "out" / "c0.nii.gz"))
    _same_geometry(mask, sitk.ReadImage(str(image_path)))
    labels = sitk.GetArrayFromImage(mask)
    with np.load(tmp_path / "out" / "c0.npz") as saved:
        probabilities = saved["probabilities"].astype(np.float32)  # stored as float16
    # Softmax over background and both labels: channels sum to one and the mask is their argmax.
    assert probabilities.shape == (3, 12, 32, 32)
    assert np.allclose(probabilities.sum(axis=0), 1.0, atol=3e-3)
    ordered = np.sort(probabilities, axis=0)
    clear = ordered[-1] - ordered[-2] > 1e-2  # float16 storage blurs near-ties
    assert clear.mean() > 0.5
    assert np.array_equal(labels[clear], np.argmax(probabilities, axis=0)[clear])
    assert set(np.unique(labels)) <= {0, 1, 2}
    record = json.loads((tmp_path / "out" / "autolung_predictions.json").read_text())
    assert "nnUNetTrainer-nnUNetPlans" in json.dumps(record)


def test_model_trained_without_mirroring_is_never_mirrored(tmp_path: Path) -> None:
    model = write_model_folder(tmp_path / "Dataset999_Test", mirror_axes=None)
    image_path = _case(tmp_path / "images")
    _predict("-i", str(image_path.parent), "-o", str(tmp_path / "tta"), "--model", str(model), "--save-probabilities")
    _predict("-i", str(image_path.parent), "-o", str(tmp_path / "plain"), "--model", str(model),
             "--save-probabilities", "--disable-tta")
    with np.load(tmp_path / "tta" / "c0.npz") as tta, np.load(tmp_path / "plain" / "c0.npz") as plain:
        assert np.array_equal(tta["probabilities"], plain["probabilities"])


def test_install_zip_then_predict_export_and_reinstall(tmp_path: Path, data_root) -> None:
    dataset_folder = tmp_path / "nnUNet_results" / "Dataset999_Test"
    model = write_model_folder(dataset_folder, folds=(0,))
    (model / "fold_0" / "progress.png").write_bytes(b"not read")
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:  # nnUNetv2_export_model_to_zip's layout
        for file in sorted(model.rglob("*")):
            if file.is_file():
                zipped.write(file, file.relative_to(dataset_folder.parent).as_posix())
    root = ["--root", str(data_root.root)]
    result = runner.invoke(app, ["install_model", str(archive), *root])
    assert result.exit_code == 0, result.output
    installed = data_root.results / "Dataset999_Test" / "3d_fullres__nnUNetTrainer-nnUNetPlans"
    record = json.loads((installed / "imported_from.json").read_text())
    assert record["trainer_name"] == "nnUNetTrainer" and record["plans_name"] == "nnUNetPlans"
    assert record["folds"][0]["sha256"] and record["sha256"]["plans.json"]
    assert not (installed / "fold_0" / "progress.png").exists()

    image_path = _case(tmp_path / "images")
    _predict("-i", str(image_path.parent), "-o", str(tmp_path / "installed"), "-d", "Dataset999_Test",
             "-c", "3d_fullres", "--planner", "nnUNetTrainer-nnUNetPlans", *root)
    _predict("-i", str(image_path.parent), "-o", str(tmp_path / "from_zip"), "--model", str(archive))
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "installed" / "c0.nii.gz")))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "from_zip" / "c0.nii.gz")))
    assert np.array_equal(a, b)

    result = runner.invoke(app, ["export_model", "-d", "Dataset999_Test", "-o", str(tmp_path / "bundle.zip"), *root])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "bundle.zip") as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
    imported = manifest["configurations"]["3d_fullres__nnUNetTrainer-nnUNetPlans"]["imported_from"]
    assert imported["format"] == "nnunet-v2" and imported["source_folder"] == model.name
    _predict("-i", str(image_path.parent), "-o", str(tmp_path / "bundle"), "--model", str(tmp_path / "bundle.zip"))
    c = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "bundle" / "c0.nii.gz")))
    assert np.array_equal(a, c)


def test_refusals_exit_non_zero_naming_the_problem(tmp_path: Path) -> None:
    image_path = _case(tmp_path / "images")
    primus = write_model_folder(tmp_path / "a", network_class="dynamic_network_architectures.architectures.primus.Primus")
    result = runner.invoke(app, ["predict", "--no-progress", "-i", str(image_path.parent), "-o", str(tmp_path / "o1"),
                                 "--model", str(primus)])
    assert result.exit_code == 1 and "Primus" in str(result.exception)  # main() prints it as "error: ..."
    custom = write_model_folder(tmp_path / "b", trainer="MyTrainer")
    checkpoint = custom / "fold_0" / "checkpoint_final.pth"
    import torch

    payload = torch.load(checkpoint, weights_only=False)
    payload["network_weights"]["decoder.attention.weight"] = torch.zeros(2)
    torch.save(payload, checkpoint)
    result = runner.invoke(app, ["predict", "--no-progress", "-i", str(image_path.parent), "-o", str(tmp_path / "o2"),
                                 "--model", str(custom)])
    assert result.exit_code == 1 and "decoder.attention.weight" in str(result.exception)
    assert "MyTrainer" in str(result.exception)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_ensemble_of_two_configurations_from_one_results_folder(tmp_path: Path) -> None:
    dataset_folder = tmp_path / "Dataset999_Test"
    write_model_folder(dataset_folder, configuration="3d_fullres")
    write_model_folder(dataset_folder, configuration="2d", dim=2, mirror_axes=(0, 1))
    image_path = _case(tmp_path / "images")
    _predict("-i", str(image_path.parent), "-o", str(tmp_path / "ens"), "--model", str(dataset_folder),
             "--save-probabilities", "--disable-tta")
    _predict("-i", str(image_path.parent), "-o", str(tmp_path / "one"), "--model", str(dataset_folder),
             "-c", "2d", "--save-probabilities", "--disable-tta")
    record = json.loads((tmp_path / "ens" / "autolung_predictions.json").read_text())
    assert {m["configuration"] for m in record["models"]} == {"2d", "3d_fullres"}
    with np.load(tmp_path / "ens" / "c0.npz") as ens, np.load(tmp_path / "one" / "c0.npz") as one:
        assert not np.allclose(ens["probabilities"], one["probabilities"])


def test_real_2d_png_case_keeps_its_geometry(tmp_path: Path) -> None:
    source = shared_dataset("FindingLungs2D") / "imagesTr" / "lungs_000_0000.png"
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(source, images / source.name)
    model = write_model_folder(tmp_path / "Dataset901_FindingLungs2D", configuration="2d", dim=2, patch=[32, 32],
                               spacing=[1.0, 1.0], labels={"background": 0, "lung": 1},
                               scheme="ZScoreNormalization", mirror_axes=(0, 1))
    _predict("-i", str(images), "-o", str(tmp_path / "out"), "--model", str(model))
    mask = sitk.ReadImage(str(tmp_path / "out" / "lungs_000.png"))
    _same_geometry(mask, sitk.ReadImage(str(source)))
    assert set(np.unique(sitk.GetArrayFromImage(mask))) <= {0, 1}


def test_inference_information_selects_the_ensemble_and_its_postprocessing(tmp_path: Path, data_root) -> None:
    dataset_folder = tmp_path / "nnUNet_results" / "Dataset999_Test"
    full = write_model_folder(dataset_folder, configuration="3d_fullres", folds=(0, 1))
    write_model_folder(dataset_folder, configuration="2d", dim=2, mirror_axes=(0, 1), folds=(0, 1))
    write_model_folder(dataset_folder, configuration="3d_lowres", folds=(0, 1))  # not selected
    ensemble = dataset_folder / "ensembles" / "ensemble___A___B___0_1"
    ensemble.mkdir(parents=True)
    (ensemble / "postprocessing.json").write_text(json.dumps({
        "postprocessing_fns": ["remove_all_but_largest_component_from_segmentation"],
        "postprocessing_kwargs": [{"labels_or_regions": [1, 2]}]}))
    (dataset_folder / "inference_information.json").write_text(json.dumps({
        "folds": [0], "dataset_name_or_id": "999",
        "best_model_or_ensemble": {
            "postprocessing_file": f"/elsewhere/nnUNet_results/Dataset999_Test/{ensemble.relative_to(dataset_folder)}"
                                   "/postprocessing.pkl",
            "selected_model_or_models": [
                {"configuration": "3d_fullres", "trainer": "nnUNetTrainer", "plans_identifier": "nnUNetPlans"},
                {"configuration": "2d", "trainer": "nnUNetTrainer", "plans_identifier": "nnUNetPlans"}]}}))
    image_path = _case(tmp_path / "images")
    _predict("-i", str(image_path.parent), "-o", str(tmp_path / "out"), "--model", str(dataset_folder))
    record = json.loads((tmp_path / "out" / "autolung_predictions.json").read_text())
    assert sorted((m["configuration"], tuple(m["folds"])) for m in record["models"]) == [("2d", (0,)),
                                                                                         ("3d_fullres", (0,))]
    assert "largest_component" in json.dumps(record)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "c0.nii.gz")))
    from scipy import ndimage

    assert ndimage.label(labels > 0, structure=np.ones((3, 3, 3)))[1] <= 1  # one foreground component left

    result = runner.invoke(app, ["install_model", str(dataset_folder), "--root", str(data_root.root)])
    assert result.exit_code == 0, result.output
    choice = json.loads((data_root.results / "Dataset999_Test" / "inference_choice.json").read_text())
    assert [e["configuration"] for e in choice["configurations"]] == ["2d", "3d_fullres"]
    assert choice["postprocessing"]["rules"][0]["method"] == "largest_component"
    assert full.is_dir()


def test_transposed_plans_predict_in_the_networks_axis_order(tmp_path: Path) -> None:
    """transpose_forward (0, 2, 1): the network sees y and x swapped; the mask comes back in the input's order."""
    plain = write_model_folder(tmp_path / "a")
    swapped = write_model_folder(tmp_path / "b", transpose=(0, 2, 1))
    image, _ = make_case((12, 32, 32), seed=3)
    array = sitk.GetArrayFromImage(image)
    array[:, :5, :] += 300  # make the case asymmetric in y and x
    for name, values in (("orig", array), ("flip", np.ascontiguousarray(array.transpose(0, 2, 1)))):
        (tmp_path / name).mkdir()
        item = sitk.GetImageFromArray(values)
        item.CopyInformation(image)
        sitk.WriteImage(item, str(tmp_path / name / "c0_0000.nii.gz"))
    _predict("-i", str(tmp_path / "orig"), "-o", str(tmp_path / "out_b"), "--model", str(swapped), "--disable-tta")
    _predict("-i", str(tmp_path / "flip"), "-o", str(tmp_path / "out_a"), "--model", str(plain), "--disable-tta")
    mask_b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out_b" / "c0.nii.gz")))
    mask_a = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out_a" / "c0.nii.gz")))
    assert mask_b.shape == (12, 32, 32)
    assert np.array_equal(mask_b, mask_a.transpose(0, 2, 1))
    assert len(np.unique(mask_b)) > 1


def test_resampled_case_resamples_logits_before_the_softmax_as_nnunet(tmp_path: Path) -> None:
    """A case predicted at a finer spacing: its averaged logits go back to the input grid, then softmax."""
    import contextlib

    import torch

    from autolung.inference.case_prediction import CaseOptions, predict_preprocessed_case
    from autolung.inference.inputs import discover_cases, read_input_case
    from autolung.inference.levers import resolve_levers
    from autolung.inference.sources import select_models
    from autolung.preprocessing.case import preprocess_case
    from autolung.preprocessing.restore import restore_label_map, restore_to_original

    model = write_model_folder(tmp_path / "Dataset999_Test", spacing=[1.25, 0.5, 0.5])
    image_path = _case(tmp_path / "images")
    _predict("-i", str(image_path.parent), "-o", str(tmp_path / "out"), "--model", str(model),
             "--disable-tta", "--mode", "full", "--precision", "float32", "--save-probabilities")
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "c0.nii.gz")))
    with np.load(tmp_path / "out" / "c0.npz") as saved:
        probabilities = saved["probabilities"].astype(np.float32)
    assert mask.shape == probabilities.shape[1:] == (12, 32, 32)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=3e-3)

    with contextlib.ExitStack() as stack:
        loaded = select_models(stack, None, None, None, None, model_path=model).models[0]
        image, geometry = read_input_case(discover_cases(image_path.parent)[0], 1)
        data, _, properties = preprocess_case(image, None, geometry, loaded.plans, loaded.configuration_name)
        assert tuple(properties["shape_after_resampling"]) != (12, 32, 32)
        options = CaseOptions(levers=resolve_levers("full", "cpu", mirror_axes=()).levers, precision="float32")
        with torch.inference_mode():
            logits = predict_preprocessed_case(loaded.networks, data, loaded.configuration, options,
                                               keep_logits=True)
            activated = predict_preprocessed_case(loaded.networks, data, loaded.configuration, options)
    mapping = loaded.plans.region_mapping
    expected = restore_label_map(logits, properties, loaded.configuration, mapping, logits=True)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_allclose(probabilities, restore_to_original(logits, properties, loaded.configuration,
                                                                  logits=True), atol=1e-3)
    # The other order (probabilities resampled) parts from it on some boundary voxels.
    assert (restore_label_map(activated, properties, loaded.configuration, mapping) != mask).any()
