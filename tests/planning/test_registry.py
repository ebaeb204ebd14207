"""Planner lookup through the autolung.planners entry points."""
from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from autolung.errors import InvalidInputError
from autolung.planning import registry


def test_shipped_planners_are_registered() -> None:
    assert {"default", "resenc_m", "resenc_l"} <= set(registry.available_planners())
    assert registry.load_planner("resenc_l").__name__ == "ResEncLPlanner"


def test_unknown_planner_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInputError, match="unknown planner 'nope'; available: .*default"):
        registry.load_planner("nope")


def test_third_party_entry_point_plugs_in(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = EntryPoint(name="mine", value="planners.resenc:ResEncMPlanner", group=registry.GROUP)
    broken = EntryPoint(name="broken", value="no_such_module:Planner", group=registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [plugin, broken])
    assert registry.load_planner("mine").__name__ == "ResEncMPlanner"
    with pytest.raises(InvalidInputError, match="cannot be loaded"):
        registry.load_planner("broken")


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")


def test_planner_in_use_prefers_the_named_then_the_only_one_then_auto(tmp_path) -> None:
    from autolung.paths import DataRoot

    root = DataRoot(tmp_path)
    assert registry.planners_with_plans(root, "Lungs") == []
    assert registry.planner_in_use(None, [], "Lungs") == registry.DEFAULT_PLANNER == "auto"
    _touch(root.plans_file("Lungs", "default"))
    assert registry.planners_with_plans(root, "Lungs") == ["default"]
    assert registry.planner_in_use(None, registry.planners_with_plans(root, "Lungs"), "Lungs") == "default"
    _touch(root.plans_file("Lungs", "cpu"))
    assert registry.planners_with_plans(root, "Lungs") == ["cpu", "default"]
    assert registry.planner_in_use("cpu", ["cpu", "default"], "Lungs") == "cpu"
    with pytest.raises(InvalidInputError, match=r"'Lungs' has plans of several planners \(cpu, default\).*`planner`"):
        registry.planner_in_use(None, ["cpu", "default"], "Lungs")


def test_trained_planners_are_read_from_the_results_folders(tmp_path) -> None:
    from autolung.paths import DataRoot

    root = DataRoot(tmp_path)
    for configuration, planner in [("2d", "auto"), ("3d_fullres", "cpu"), ("3d_fullres", "auto")]:
        root.training_output("Lungs", configuration, planner).mkdir(parents=True)
    (root.results_dataset("Lungs") / "inference_choice.json").write_text("{}")
    assert registry.planners_with_trained(root, "Lungs") == ["auto", "cpu"]
    assert registry.planners_with_trained(root, "Lungs", ["2d"]) == ["auto"]
    assert registry.planner_in_use(None, registry.planners_with_trained(root, "Lungs", ["2d"]), "Lungs") == "auto"


def test_plans_file_names_map_back_to_their_planner(tmp_path) -> None:
    from autolung.paths import DataRoot

    root = DataRoot(tmp_path)
    for planner in ("default", "auto", "cpu_transfer"):
        assert DataRoot.planner_of_plans_file(root.plans_file("Lungs", planner)) == planner
    for other in ("plans", "plans_.json", "plans_auto.json.tmp", "fingerprint.json"):
        assert DataRoot.planner_of_plans_file(tmp_path / other) is None
