"""plan_dataset on a tiny dataset: the saved plans round-trip, hand edits fail clearly."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from autolung.errors import InvalidPlansError
from autolung.network import build_network
from autolung.paths import DataRoot
from autolung.planning.explain import format_explanation
from autolung.planning.plans import Plans
from autolung.planning.run import plan_dataset


@pytest.fixture
def planned(tiny_msd: Path, data_root: DataRoot) -> Path:
    plan_dataset(tiny_msd, data_root, num_processes=1)
    return data_root.plans_file(tiny_msd.name)


def test_plans_round_trip(planned: Path, data_root: DataRoot) -> None:
    plans = Plans.load(planned)
    assert plans.to_json() == json.loads(planned.read_text())
    assert set(plans.configurations) >= {"2d", "3d_fullres"}
    assert data_root.fingerprint_file("Tiny_CT").is_file()  # computed on the way
    cfg = plans.configuration("3d_fullres")
    net = build_network(cfg.architecture, in_channels=1, out_channels=plans.region_mapping.num_channels)
    assert net.feature_map_elements(cfg.patch_size) > 0


def test_non_default_planner_writes_its_own_file(tiny_msd: Path, data_root: DataRoot) -> None:
    plans = plan_dataset(tiny_msd, data_root, planner="resenc_m", num_processes=1)
    assert plans.planner == "resenc_m"
    assert Plans.load(data_root.plans_file("Tiny_CT", "resenc_m")).configuration("3d_fullres").architecture.network \
        == "resenc_unet"


def _edit(path: Path, change) -> None:
    payload = json.loads(path.read_text())
    change(payload["configurations"]["3d_fullres"])
    path.write_text(json.dumps(payload))


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(patch_size=[c["patch_size"][0] + 1, *c["patch_size"][1:]]), "not divisible"),
    (lambda c: c.update(batch_size="two"), "'configurations.3d_fullres.batch_size' must be int"),
    (lambda c: c["normalization"][0].update(scheme="minmax"), "scheme' must be one of"),
    (lambda c: c["architecture"].update(kernel_sizes=[[3, 3, 3]]), "kernel_sizes' must have one entry per stage"),
])
def test_hand_edited_invalid_plans_name_the_problem(planned: Path, change, message: str) -> None:
    _edit(planned, change)
    with pytest.raises(InvalidPlansError, match=message) as info:
        Plans.load(planned)
    assert info.value.path == planned


def test_explanation_lists_every_decision(planned: Path) -> None:
    text = format_explanation(Plans.load(planned))
    for expected in ("[3d_fullres]", "target spacing", "patch size", "pooling", "batch size", "normalization CT",
                     "because"):
        assert expected in text


def test_recommended_configuration_round_trips_outside_the_digest(planned: Path) -> None:
    from autolung.planning.plans import Decision

    plans = Plans.load(planned)
    digest = plans.digest()
    fallback = plans.recommended()
    assert (fallback.what, fallback.value) == ("configuration", "3d_fullres") and "recommends none" in fallback.rule
    assert "recommended_configuration" not in json.loads(planned.read_text())  # older layout kept when unset
    plans.recommended_configuration = Decision("configuration", "2d", "a short CPU budget")
    plans.save(planned)
    loaded = Plans.load(planned)
    assert loaded.recommended() == Decision("configuration", "2d", "a short CPU budget")
    assert loaded.digest() == digest  # it changes no network, so no trained fold goes stale
    text = format_explanation(loaded)
    assert "Configuration trained when none is named: 2d" in text and "because a short CPU budget" in text
    payload = json.loads(planned.read_text())
    payload["recommended_configuration"]["value"] = "3d_lowres_missing"
    planned.write_text(json.dumps(payload))
    with pytest.raises(InvalidPlansError, match="names '3d_lowres_missing', which is not planned"):
        Plans.load(planned)
