"""Determinism (training with --deterministic, preprocessing) and provenance (version + plans hash)."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

import autolung
from autolung.paths import DataRoot
from autolung.planning.plans import Plans
from autolung.preprocessing.run import preprocess_dataset
from autolung.training.run import train_fold
from conftest import write_tiny_msd
from training.helpers import DATASET, fast_options, write_tiny_preprocessed


def _final(root: DataRoot) -> dict:
    return torch.load(root.training_output(DATASET, "3d_fullres") / "fold_0" / "checkpoint_final.pt",
                      weights_only=True)


@pytest.mark.slow
def test_two_deterministic_cpu_trainings_give_bit_identical_weights_and_provenance(tmp_path):
    roots = [DataRoot(tmp_path / name) for name in ("a", "b", "other_seed")]
    for root in roots:
        write_tiny_preprocessed(root, num_cases=4)
    for root, seed in zip(roots, (7, 7, 8)):
        train_fold(root, DATASET, "3d_fullres", 0, fast_options(epochs=2, iters_per_epoch=2, deterministic=True,
                                                                seed=seed, plot_every=100, num_threads=1))
    a, b, other = (_final(root) for root in roots)
    for key, value in a["network_weights"].items():
        assert torch.equal(value, b["network_weights"][key]), key
    assert any(not torch.equal(v, other["network_weights"][k]) for k, v in a["network_weights"].items())

    digest = Plans.load(roots[0].plans_file(DATASET)).digest()
    fold = roots[0].training_output(DATASET, "3d_fullres") / "fold_0"
    for name in ("checkpoint_latest.pt", "checkpoint_best.pt", "checkpoint_final.pt"):
        payload = torch.load(fold / name, weights_only=True)
        assert payload["autolung_version"] == autolung.__version__ and payload["plans_digest"] == digest, name
    info = json.loads((fold / "training_info.json").read_text())
    assert info["autolung_version"] == autolung.__version__ and info["plans_digest"] == digest

    from autolung.inference.bundle import export_model

    export_model(roots[0].results_dataset(DATASET), ["3d_fullres__default"], tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        manifest = json.loads(archive.read("manifest.json")) if "manifest.json" in archive.namelist() else None
        assert manifest is not None and manifest["autolung_version"] == autolung.__version__
        plans = json.loads(archive.read("3d_fullres__default/plans.json"))
        assert Plans.from_json(plans).digest() == digest


def test_preprocessing_is_deterministic_and_records_version_and_plans_digest(tmp_path):
    from autolung.fingerprint import fingerprint_dataset
    from autolung.planning.run import plan_dataset

    outputs = []
    for name in ("a", "b"):
        root = DataRoot(tmp_path / name)
        folder = write_tiny_msd(root.raw / "Tiny_CT", num_cases=3, shape=(8, 24, 24))
        fingerprint_dataset(folder, root, num_processes=1, progress=False)
        plans = plan_dataset(folder, root, planner="default", gpu_memory_gb=None, overrides=None, num_processes=1)
        preprocess_dataset(folder, root, ["3d_fullres"], num_processes=2, progress=False)
        outputs.append((root.preprocessed_configuration("Tiny_CT", "3d_fullres"), plans.digest()))
    (first, digest), (second, other_digest) = outputs
    assert digest == other_digest
    files = sorted(p.name for p in first.iterdir() if not p.name.startswith("."))
    assert files == sorted(p.name for p in second.iterdir() if not p.name.startswith(".")) and len(files) == 9
    for name in files:
        if name.endswith(".npy"):
            assert (first / name).read_bytes() == (second / name).read_bytes(), name
        else:
            properties = json.loads((first / name).read_text())
            assert properties == json.loads((second / name).read_text()), name
            assert properties["autolung_version"] == autolung.__version__
            assert properties["plans_digest"] == digest
    assert np.load(first / "case_000.npy").dtype == np.float32
