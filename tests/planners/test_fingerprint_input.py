"""Planners take the typed Fingerprint, and still the fingerprint.json payload, with equal plans."""
from __future__ import annotations

import pytest
from synthetic_fingerprints import synthetic_fingerprint

from autolung.errors import InvalidInputError
from autolung.fingerprint import Fingerprint
from autolung.planning.registry import load_planner


@pytest.mark.parametrize("planner", ["default", "cpu", "resenc_m"])
def test_typed_and_payload_fingerprints_make_the_same_plans(planner: str) -> None:
    payload = synthetic_fingerprint([(2.5, 0.7, 0.7)] * 6 + [(1.25, 0.7, 0.7)] * 4, [(60, 200, 180)] * 10)
    typed = Fingerprint.from_json(payload)
    planner_class = load_planner(planner)
    assert isinstance(planner_class(payload).fingerprint, Fingerprint)
    assert planner_class(typed).plan("D").to_json() == planner_class(payload).plan("D").to_json()


def test_a_payload_without_cases_is_refused_before_planning() -> None:
    payload = synthetic_fingerprint([(1.0, 1.0, 1.0)], [(32, 32, 32)])
    payload["cases"] = []
    with pytest.raises(InvalidInputError, match="fingerprint has no cases"):
        load_planner("default")(payload)
