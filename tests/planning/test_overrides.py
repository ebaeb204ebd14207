"""Parsing CLI override values."""
from __future__ import annotations

import pytest

from autolung.errors import InvalidInputError
from autolung.planning.overrides import PlanOverrides, parse_overrides


@pytest.mark.parametrize("raw", ["32 64 64", "32,64,64", "32x64x64", ["32", "64", "64"]])
def test_patch_size_forms(raw) -> None:
    assert parse_overrides(patch_size=raw).patch_size == [32, 64, 64]


def test_default_targets_follow_the_patch_dimensionality() -> None:
    three = parse_overrides(patch_size="32 64 64", batch_size=4)
    assert three.patch_for("3d_fullres") == [32, 64, 64] and three.patch_for("3d_lowres") == [32, 64, 64]
    assert three.patch_for("2d") is None and three.batch_for("2d") == 4
    two = parse_overrides(patch_size="128 128")
    assert two.patch_for("2d") == [128, 128] and two.patch_for("3d_fullres") is None


def test_configuration_restricts_overrides() -> None:
    overrides = parse_overrides(target_spacing="2 1 1", configurations=["3d_fullres"])
    assert overrides.spacing_for("3d_fullres") == [2.0, 1.0, 1.0]
    assert overrides.spacing_for("2d") is None
    assert overrides.recorded_for("3d_fullres") == {"target_spacing": [2.0, 1.0, 1.0]}


@pytest.mark.parametrize("kwargs, message", [
    ({"patch_size": "32 64"}, None),
    ({"patch_size": "32 a 64"}, "expects int"),
    ({"patch_size": "1 2 3 4"}, "2 or 3 values"),
    ({"target_spacing": "1 1"}, "3 values"),
    ({"patch_size": "0 64 64"}, "positive"),
    ({"configurations": ["3d_hires"]}, "unknown configuration"),
    ({"patch_size": "64 64", "configurations": ["3d_fullres"]}, "use 2 values for 2d"),
    ({"batch_size": 0}, "at least 1"),
])
def test_bad_values_are_clear_errors(kwargs, message) -> None:
    if message is None:
        assert parse_overrides(**kwargs).patch_size == [32, 64]
        return
    with pytest.raises(InvalidInputError, match=message):
        parse_overrides(**kwargs)


def test_empty_overrides() -> None:
    assert PlanOverrides().is_empty() and parse_overrides().is_empty()
