"""Find planners by name through the ``autolung.planners`` entry-point group.

Any installed package can add a planner by declaring, in its pyproject.toml::

    [project.entry-points."autolung.planners"]
    my_planner = "my_package.module:MyPlanner"

A planner is a class ``Planner(fingerprint, gpu_memory_gb=None, overrides=None)`` with
``.plan(dataset_name) -> Plans`` (see ``planners.default.DefaultPlanner``).
"""
from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from autolung.errors import InvalidInputError

GROUP = "autolung.planners"
# Planners shipped in this source tree, found even when the installed metadata predates them
# (an editable install made before the planner was added); an installed entry point wins.
SHIPPED = {"auto": "planners.auto:AutoPlanner"}


def _entry_points() -> dict[str, EntryPoint]:
    points = {name: EntryPoint(name, value, GROUP) for name, value in SHIPPED.items()}
    points.update({ep.name: ep for ep in entry_points(group=GROUP)})
    return points


def available_planners() -> list[str]:
    """Names of the installed planners, sorted."""
    return sorted(_entry_points())


def load_planner(name: str) -> type[Any]:
    """The planner class registered under ``name``.

    Args:
        name: entry-point name, e.g. "default", "resenc_m", "resenc_l".

    Returns:
        The planner class.

    Raises:
        InvalidInputError: when no planner has that name, or it fails to import.
    """
    points = _entry_points()
    if name not in points:
        known = ", ".join(sorted(points)) or "none installed"
        raise InvalidInputError(f"unknown planner {name!r}; available: {known}")
    try:
        planner = points[name].load()
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(f"planner {name!r} ({points[name].value}) cannot be loaded: {exc}") from None
    if not callable(getattr(planner, "plan", None)):
        raise InvalidInputError(f"planner {name!r} ({points[name].value}) has no plan() method")
    return planner


def sizes_to_device_and_budget(name: str) -> bool:
    """Whether the planner ``name`` sizes its plan to the training device and time budget ("auto")."""
    return bool(getattr(load_planner(name), "accepts_device_and_budget", False))
