"""Every artefact records the autolung version and the plans digest: masks (headers and the
folder record), overlays, evaluation summaries, ensembles, bundles, the fingerprint and plans."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import SimpleITK as sitk
from PIL import Image
from typer.testing import CliRunner

import autolung
from autolung.evaluation.evaluate import evaluate_folders
from autolung.inference.ensembling import ensemble_folders
from autolung.inference.model import load_trained_model
from autolung.inference.predictor import PredictionOptions, predict_paths
from autolung.io.geometry import ImageGeometry
from autolung.io.images import write_image
from autolung.planning.plans import Plans
from autolung.provenance import PREDICTIONS_RECORD, header_note, image_metadata
from autolung_cli.app import _register_commands, app

from conftest import make_case, write_tiny_msd
from inference.fake_model import tiny_plans, write_fake_model

_register_commands()
FAST = PredictionOptions(mirror=False, window_batch_size=4)


def _images(folder, count: int, shape=(8, 20, 20)):
    folder.mkdir(parents=True, exist_ok=True)
    references = folder.parent / f"{folder.name}_labels"
    references.mkdir(exist_ok=True)
    for index in range(count):
        image, label = make_case(shape, seed=index)
        sitk.WriteImage(image, str(folder / f"c{index}_0000.nii.gz"))
        sitk.WriteImage(label, str(references / f"c{index}.nii.gz"))
    return references


def test_image_headers_keep_the_note_in_nifti_nrrd_and_png(tmp_path):
    metadata = image_metadata("0123456789abcdef")
    assert metadata["note"] == f"autolung {autolung.__version__} plans 0123456789abcdef"
    volume = ImageGeometry(shape=(3, 4, 5), spacing=(2.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                           direction=tuple(np.eye(3).ravel()), file_format="nifti")
    labels = np.zeros((3, 4, 5), np.uint8)
    nifti = sitk.ReadImage(str(write_image(labels, volume, tmp_path / "m.nii.gz", metadata=metadata)))
    assert nifti.GetMetaData("descrip") == metadata["note"]
    nrrd = sitk.ReadImage(str(write_image(labels, volume, tmp_path / "m.nrrd", metadata=metadata)))
    assert nrrd.GetMetaData("autolung_plans_digest") == "0123456789abcdef"
    assert nrrd.GetMetaData("autolung_version") == autolung.__version__
    plane = ImageGeometry(shape=(1, 4, 5), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0),
                          direction=(1.0, 0.0, 0.0, 1.0), file_dims=2, file_format="png")
    png = write_image(np.ones((1, 4, 5), np.uint8), plane, tmp_path / "m.png", metadata=metadata)
    with Image.open(png) as picture:
        assert picture.text["autolung_plans_digest"] == "0123456789abcdef"
        assert picture.text["Comment"] == metadata["note"]
        assert np.asarray(picture).tolist() == np.ones((4, 5), np.uint8).tolist()


def test_nifti_note_fits_80_bytes_even_for_ensembles():
    note = header_note(["a" * 16, "b" * 16, "c" * 16])
    assert len(note.encode()) < 80 and note.startswith(f"autolung {autolung.__version__} plans ")


def test_predicted_masks_record_version_and_digest_and_evaluation_carries_it(tmp_path):
    folder = write_fake_model(tmp_path / "model", tiny_plans(), folds=(0,), bias=0.3)
    digest = Plans.load(folder / "plans.json").digest()
    model = load_trained_model(folder)
    images = tmp_path / "images"
    references = _images(images, 2)
    output = tmp_path / "out"
    masks = predict_paths(images / "c0_0000.nii.gz", output, [model], FAST)
    assert sitk.ReadImage(str(masks[0])).GetMetaData("descrip") == f"autolung {autolung.__version__} plans {digest}"
    predict_paths(images, output, [model], FAST)  # c0 skipped, c1 added: the record keeps both
    record = json.loads((output / PREDICTIONS_RECORD).read_text())
    assert record["autolung_version"] == autolung.__version__ and record["plans_digest"] == digest
    assert record["cases"] == ["c0", "c1"] and record["models"][0]["plans_digest"] == digest
    assert record["models"][0]["folds"] == [0] and record["options"]["mirror"] is False

    summary = evaluate_folders(references, output, output_json=tmp_path / "summary.json")
    written = json.loads((tmp_path / "summary.json").read_text())
    for found in (summary, written):
        assert found["autolung_version"] == autolung.__version__ and found["plans_digest"] == digest
    foreign = evaluate_folders(references, references)  # masks autolung did not make: no digest claimed
    assert foreign["plans_digest"] is None and foreign["autolung_version"] == autolung.__version__


def test_ensemble_records_the_digests_of_both_inputs(tmp_path):
    runs = []
    for index, features_bias in enumerate((0.3, -0.2)):
        plans = tiny_plans(spacing=(2.5, 0.7, 0.7 + 0.1 * index))
        folder = write_fake_model(tmp_path / f"model{index}", plans, folds=(0,), bias=features_bias)
        runs.append((load_trained_model(folder), plans.digest()))
    images = tmp_path / "images"
    _images(images, 1)
    outputs = []
    for index, (model, _) in enumerate(runs):
        outputs.append(tmp_path / f"probs{index}")
        predict_paths(images, outputs[-1], [model], PredictionOptions(mirror=False, save_probabilities=True))
    [mask] = ensemble_folders(outputs, tmp_path / "ensembled")
    record = json.loads((tmp_path / "ensembled" / PREDICTIONS_RECORD).read_text())
    assert record["plans_digest"] == sorted(d for _, d in runs) and record["cases"] == ["c0"]
    assert "+".join(sorted(d for _, d in runs)) in sitk.ReadImage(str(mask)).GetMetaData("descrip")


def test_predict_cli_overlays_and_bundle_manifest_carry_the_digest(tmp_path, data_root):
    results = data_root.results_dataset("Tiny_CT")
    folder = write_fake_model(results / "3d_fullres__default", tiny_plans(), folds=(0,), bias=0.4)
    digest = Plans.load(folder / "plans.json").digest()
    images = tmp_path / "images"
    _images(images, 2)
    root = ["--root", str(data_root.root)]
    result = CliRunner().invoke(app, ["predict", "-i", str(images), "-o", str(tmp_path / "out"), "-d", "Tiny_CT",
                                      "-c", "3d_fullres", "-f", "0", "--disable-tta", "--no-progress", "--overlays",
                                      *root])
    assert result.exit_code == 0, result.output
    overlays = sorted((tmp_path / "out" / "overlays").glob("*.png"))
    assert [p.name for p in overlays] == ["c0.png", "c1.png"]
    with Image.open(overlays[0]) as picture:
        assert picture.size[0] > 200 and digest in picture.text["Comment"]

    result = CliRunner().invoke(app, ["export_model", "-d", "Tiny_CT", "-c", "3d_fullres", "-o",
                                      str(tmp_path / "model.zip"), *root])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["configurations"]["3d_fullres__default"]["plans_digest"] == digest


def test_fingerprint_records_the_version_and_plans_record_the_fingerprint(tmp_path):
    from autolung.fingerprint import fingerprint_dataset
    from autolung.paths import DataRoot
    from autolung.planning.run import fingerprint_digest, plan_dataset

    root = DataRoot(tmp_path / "root")
    dataset = write_tiny_msd(root.raw / "Tiny_CT", num_cases=2, shape=(8, 24, 24))
    fingerprint_dataset(dataset, root, num_processes=1, progress=False)
    fingerprint = json.loads(root.fingerprint_file("Tiny_CT").read_text())
    assert fingerprint["autolung_version"] == autolung.__version__ and fingerprint["plans_digest"] is None
    plans = plan_dataset(dataset, root, num_processes=1)
    saved = json.loads(root.plans_file("Tiny_CT").read_text())
    assert saved["fingerprint_digest"] == fingerprint_digest(fingerprint) == plans.fingerprint_digest
    before = plans.digest()
    plans.fingerprint_digest = "something else"
    assert plans.digest() == before  # provenance, not content: the networks' plans are unchanged
