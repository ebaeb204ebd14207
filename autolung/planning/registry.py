"""Find planners by name through the ``autolung.planners`` entry-point group.

Any installed package can add a planner by declaring, in its pyproject.toml::

    [project.entry-points."autolung.planners"]
    my_planner = "my_package.module:MyPlanner"

A planner is a class ``Planner(fingerprint, gpu_memory_gb=None, overrides=None)`` with
``.plan(dataset_name) -> Plans`` (see ``planners.default.DefaultPlanner``).
"""
from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from autolung.errors import InvalidInputError
from autolung.paths import DataRoot

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


# What a command uses when no planner is named: the plans that are there, else this one.
DEFAULT_PLANNER = "auto"


def planners_with_plans(data_root: DataRoot, dataset_name: str) -> list[str]:
    """Planners whose plans file exists for ``dataset_name`` (``plans.json`` is "default"), sorted."""
    folder = data_root.preprocessed_dataset(dataset_name)
    found = set()
    for path in folder.glob("plans*.json") if folder.is_dir() else ():
        planner = DataRoot.planner_of_plans_file(path)
        if planner:
            found.add(planner)
    return sorted(found)


def planners_with_trained(data_root: DataRoot, dataset_name: str,
                          configurations: Sequence[str] | None = None) -> list[str]:
    """Planners of the trained ``results/<ds>/<config>__<planner>`` folders (of ``configurations`` if given)."""
    folder = data_root.results_dataset(dataset_name)
    found = set()
    for child in folder.iterdir() if folder.is_dir() else ():
        configuration, separator, planner = child.name.partition("__")
        if separator and child.is_dir() and (configurations is None or configuration in configurations):
            found.add(planner)
    return sorted(found)


def planner_in_use(requested: str | None, available: Sequence[str], dataset_name: str, what: str = "plans") -> str:
    """The planner a command works with: the requested one, else the only one on disk, else ``auto``.

    Args:
        requested: the planner named by the caller (wins), or None.
        available: the planners found on disk (:func:`planners_with_plans` or :func:`planners_with_trained`).
        dataset_name: for the error message.
        what: what was looked for ("plans", "trained configurations"), for the error message.

    Returns:
        The planner name.

    Raises:
        InvalidInputError: when no planner is named and the dataset has several.
    """
    if requested:
        return requested
    if len(available) > 1:
        raise InvalidInputError(f"dataset {dataset_name!r} has {what} of several planners ({', '.join(available)}); "
                                f"name the one to use with `planner`")
    return available[0] if available else DEFAULT_PLANNER
