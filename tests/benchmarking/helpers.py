"""Hand-made benchmark results for report tests."""
from __future__ import annotations

import math


def case(case_id: str, per_class: dict[str, tuple[float, float, float]]) -> dict:
    """One case: ``{class: (dice, hd95, nsd)}``."""
    return {"case_id": case_id,
            "metrics": {key: {"dice": d, "hd95": h, "nsd": n, "iou": d} for key, (d, h, n) in per_class.items()}}


def plan(spacing=(2.5, 0.7, 0.7), patch=(12, 32, 32), batch=2, stages=4) -> dict:
    return {"spacing": list(spacing), "patch_size": list(patch), "batch_size": batch, "num_stages": stages,
            "features_per_stage": [32 * 2 ** i for i in range(stages)], "network": "unet"}


def lung_result() -> dict:
    """Two classes, four cases; HD95 undefined (NaN) in one case of class 2."""
    cases = [case("a", {"1": (0.9, 2.0, 0.95), "2": (0.5, 10.0, 0.6)}),
             case("b", {"1": (0.8, 4.0, 0.85), "2": (0.0, math.nan, 0.0)}),
             case("c", {"1": (0.7, 6.0, 0.75), "2": (0.7, 6.0, 0.8)}),
             case("d", {"1": (0.6, 8.0, 0.65), "2": (0.3, 14.0, 0.4)})]
    return {"dataset": "Lung_CT", "labels": {"1": "lung", "2": "tumour"}, "failed": None,
            "best": {"configurations": [{"configuration": "3d_fullres"}], "mean_foreground_dice": 0.56,
                     "mean_foreground_dice_postprocessed": 0.58,
                     "postprocessing": {"rules": [{"label": 1, "method": "largest_component"}]}},
            "configurations": {"3d_fullres": {
                "plan": plan(),
                "folds": {"0": {"training_time_s": 100.0, "epochs": 10, "inference_s_per_case": 2.0,
                                "num_validation_cases": 2},
                          "1": {"training_time_s": 120.0, "epochs": 10, "inference_s_per_case": 4.0,
                                "num_validation_cases": 2}},
                "cases": cases,
                "lesions": {"1": {"lesion_sensitivity": 1.0, "fp_per_case": 0.25},
                            "2": {"lesion_sensitivity": 0.75, "fp_per_case": 1.5}}}}}


def slices_result() -> dict:
    """A 2D dataset with one class and two cases."""
    cases = [case("s1", {"1": (1.0, 0.0, 1.0)}), case("s2", {"1": (0.5, 3.0, 0.5)})]
    return {"dataset": "Slices2D", "labels": {"1": "lung"}, "failed": None, "best": None,
            "configurations": {"2d": {"plan": plan((999.0, 1.0, 1.0), (1, 64, 64), 12, 5),
                                      "folds": {"0": {"training_time_s": 30.0, "epochs": 3,
                                                      "inference_s_per_case": 0.1, "num_validation_cases": 2}},
                                      "cases": cases, "lesions": {}}}}
