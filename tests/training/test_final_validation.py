from __future__ import annotations

import json

import pytest

from autolung.paths import DataRoot
from autolung.training.options import TrainingOptions
from autolung.training.run import train_fold

from conftest import write_tiny_msd


@pytest.mark.slow
def test_raw_to_validation_predictions_and_summary(data_root: DataRoot):
    from autolung.fingerprint.run import fingerprint_dataset
    from autolung.planning.plans import Plans
    from autolung.planning.run import plan_dataset
    from autolung.preprocessing.run import preprocess_dataset

    dataset = write_tiny_msd(data_root.raw / "Tiny_CT", num_cases=5)
    fingerprint_dataset(dataset, data_root, 1, False)
    plan_dataset(dataset, data_root, "default", 8.0)
    plans = Plans.load(data_root.plans_file("Tiny_CT"))
    arch = plans.configurations["3d_fullres"].architecture
    arch.features_per_stage = [4 * 2 ** min(i, 2) for i in range(arch.num_stages)]  # tiny network
    plans.save(data_root.plans_file("Tiny_CT"))
    preprocess_dataset(dataset, data_root, ["3d_fullres"], 1, progress=False)

    options = TrainingOptions(epochs=1, iters_per_epoch=2, val_iters=1, device="cpu", num_workers=0, num_threads=1)
    folder = train_fold(data_root, "Tiny_CT", "3d_fullres", 0, options)
    splits = json.loads(data_root.splits_file("Tiny_CT").read_text())
    validation = folder / "validation"
    for case_id in splits[0]["val"]:
        assert (validation / f"{case_id}.nii.gz").is_file() and (validation / f"{case_id}.npz").is_file()
    summary = json.loads((validation / "summary.json").read_text())
    assert summary["num_cases"] == len(splits[0]["val"])
    assert (folder.parent / "fingerprint.json").is_file()
