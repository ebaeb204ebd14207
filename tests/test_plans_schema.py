from __future__ import annotations

import json

import pytest

from autolung.errors import InvalidPlansError
from autolung.labels import RegionMapping
from autolung.planning.plans import ArchitecturePlan, ConfigurationPlan, NormalizationPlan, Plans


def make_plans() -> Plans:
    arch = ArchitecturePlan(network="unet", dim=3, features_per_stage=[8, 16, 32],
                            strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]],
                            kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3]],
                            blocks_per_stage=[2, 2, 2], decoder_convs_per_stage=[2, 2])
    cfg = ConfigurationPlan(name="3d_fullres", dim=3, spacing=[2.5, 0.7, 0.7], patch_size=[8, 32, 32],
                            batch_size=2, architecture=arch,
                            normalization=[NormalizationPlan("CT", "ct", -1000.0, 200.0, -300.0, 250.0)],
                            median_shape_after_resampling=[12, 32, 32])
    return Plans(dataset_name="Tiny", planner="default", channel_names=["CT"],
                 labels={"background": 0, "a": 1, "b": 2},
                 region_mapping=RegionMapping.one_per_label([1, 2]), configurations={"3d_fullres": cfg})


def test_round_trip_keeps_everything_and_digest(tmp_path):
    plans = make_plans()
    plans.save(tmp_path / "plans.json")
    loaded = Plans.load(tmp_path / "plans.json")
    assert loaded.to_json() == plans.to_json()
    assert loaded.digest() == plans.digest()


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.update(version=99), "version"),
    (lambda p: p["configurations"]["3d_fullres"].update(batch_size="two"), "batch_size"),
    (lambda p: p["configurations"]["3d_fullres"].update(patch_size=[8, 30, 32]), "divisible"),
    (lambda p: p["configurations"]["3d_fullres"]["normalization"][0].update(scheme="magic"), "scheme"),
    (lambda p: p["configurations"]["3d_fullres"].pop("architecture"), "architecture"),
    (lambda p: p["configurations"]["3d_fullres"].update(surprise=1), "unknown keys"),
])
def test_hand_edited_invalid_plans_name_file_and_key(tmp_path, edit, message):
    payload = make_plans().to_json()
    edit(payload)
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(InvalidPlansError, match=message) as info:
        Plans.load(path)
    assert str(path) in str(info.value)


def test_invalid_json_is_a_clear_error(tmp_path):
    path = tmp_path / "plans.json"
    path.write_text("{not json")
    with pytest.raises(InvalidPlansError, match="not valid JSON"):
        Plans.load(path)
