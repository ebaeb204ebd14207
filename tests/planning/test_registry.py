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
