from __future__ import annotations

import json
import logging

import pytest

from autolung.paths import DataRoot
from autolung.provenance import PREDICTIONS_RECORD
from autolung.training.options import TrainingOptions
from autolung.training.run import train_fold

from conftest import write_tiny_msd


@pytest.mark.slow
def test_raw_to_validation_predictions_and_summary(data_root: DataRoot, caplog):
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

    options = TrainingOptions(epochs=1, iters_per_epoch=2, val_iters=1, device="cpu", num_workers=0, num_threads=1,
                              time_budget_s=600)
    with caplog.at_level(logging.INFO):
        folder = train_fold(data_root, "Tiny_CT", "3d_fullres", 0, options)
    assert "time budget 600 s covers training only; the final validation of 1 case(s)" in caplog.text
    assert "final validation took" in caplog.text and "prediction mode fast" in caplog.text
    splits = json.loads(data_root.splits_file("Tiny_CT").read_text())
    validation = folder / "validation"
    for case_id in splits[0]["val"]:
        assert (validation / f"{case_id}.nii.gz").is_file() and (validation / f"{case_id}.npz").is_file()
    record = json.loads((validation / PREDICTIONS_RECORD).read_text())
    assert record["options"]["mode"] == "fast" and record["options"]["mirror"] is False
    assert record["options"]["crop_to_body"] and record["options"]["skip_empty_windows"]
    summary = json.loads((validation / "summary.json").read_text())
    assert summary["num_cases"] == len(splits[0]["val"])
    assert (folder.parent / "fingerprint.json").is_file()


def test_validation_levers_follow_the_mode_and_2d_never_mirrors_z():
    from autolung.inference.case_prediction import configuration_levers
    from autolung.inference.levers import resolve_levers

    from tests.inference.fake_model import tiny_plans

    config_2d, config_3d = tiny_plans(dim=2).configuration("2d"), tiny_plans(dim=3).configuration("3d_fullres")
    fast = configuration_levers(resolve_levers("fast", "cpu"), config_3d).levers
    assert fast.mirror_axes == () and fast.crop_to_body and fast.skip_empty_windows
    assert configuration_levers(resolve_levers("full", "cpu"), config_2d).levers.mirror_axes == (1, 2)
    assert configuration_levers(resolve_levers("full", "cpu"), config_3d).levers.mirror_axes == (0, 1, 2)


def test_budget_statement_says_what_the_budget_covers():
    from autolung.errors import AutolungError
    from autolung.training.run import budget_statement

    line = budget_statement(TrainingOptions(time_budget_s=600), 3)
    assert line == ("time budget 600 s covers training only; the final validation of 3 case(s) "
                    "(prediction mode fast) runs after it")
    assert "no final validation" in budget_statement(TrainingOptions(time_budget_s=60, final_validation=False), 3)
    with pytest.raises(AutolungError, match="validation_mode"):
        TrainingOptions(validation_mode="quick")
