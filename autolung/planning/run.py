"""Plan a dataset: read (or compute) its fingerprint, run a planner, save the plans."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from autolung.fingerprint.schema import Fingerprint
from autolung.paths import DataRoot
from autolung.planning.overrides import PlanOverrides
from autolung.planning.plans import Plans
from autolung.planning.registry import load_planner
from autolung.progress import ProgressReporter

log = logging.getLogger(__name__)


def load_or_compute_fingerprint(dataset_folder: Path, data_root: DataRoot, num_processes: int = 2,
                                progress: ProgressReporter | None = None) -> Fingerprint:
    """The dataset's fingerprint.json, computed first when missing."""
    # Deferred: fingerprinting pulls in image reading, which plan-only callers never need.
    from autolung.fingerprint.run import fingerprint_dataset

    path = data_root.fingerprint_file(dataset_folder.name)
    if path.is_file():
        return Fingerprint.load(path)
    log.info("no fingerprint at %s yet; computing it", path)
    return Fingerprint.from_json(
        fingerprint_dataset(dataset_folder, data_root, num_processes=num_processes, progress=progress), path)


def fingerprint_digest(fingerprint: Fingerprint | dict) -> str:
    """A short hash of a fingerprint's content (its autolung version left out).

    Args:
        fingerprint: the fingerprint, or its fingerprint.json payload (the same digest).
    """
    payload = fingerprint.to_json() if isinstance(fingerprint, Fingerprint) else fingerprint
    content = {k: v for k, v in payload.items() if k != "autolung_version"}
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def plan_dataset(dataset_folder: str | Path, data_root: DataRoot, planner: str = "default",
                 gpu_memory_gb: float | None = None, overrides: PlanOverrides | None = None,
                 num_processes: int = 2, progress: ProgressReporter | None = None, device: str = "auto",
                 time_budget_s: float | None = None) -> Plans:
    """Plan ``dataset_folder`` with the named planner and save ``data_root.plans_file(name, planner)``.

    Args:
        dataset_folder: the raw dataset folder; its name names the outputs.
        data_root: the data root.
        planner: entry-point name of the planner ("default", "resenc_m", "resenc_l", ...).
        gpu_memory_gb: GPU memory budget; None uses the planner's preset (8 GB; 24 GB for resenc_l).
        overrides: forced patch size, batch size, spacing.
        num_processes: worker processes if the fingerprint must be computed.
        progress: receives the fingerprint's progress if it must be computed.
        device: the device training will run on ("auto", "cpu", "cuda", "mps"); used by planners
            that size the plan to the hardware (``accepts_device_and_budget``, e.g. "auto").
        time_budget_s: the training budget such planners size the plan for; None = their default.

    Returns:
        The saved plans.
    """
    dataset_folder = Path(dataset_folder)
    fingerprint = load_or_compute_fingerprint(dataset_folder, data_root, num_processes, progress)
    planner_class = load_planner(planner)
    if getattr(planner_class, "accepts_device_and_budget", False):
        instance = planner_class(fingerprint, gpu_memory_gb=gpu_memory_gb, overrides=overrides, device=device,
                                 time_budget_s=time_budget_s)
    else:
        if time_budget_s is not None:
            log.warning("planner %r does not size its plan to a time budget; time_budget_s=%g s only applies "
                        "to training (planner 'auto' does)", planner, time_budget_s)
        instance = planner_class(fingerprint, gpu_memory_gb=gpu_memory_gb, overrides=overrides)
    plans = instance.plan(dataset_folder.name)
    # The registry name (not the class's own) names the file, so any entry point round-trips.
    plans.planner = planner
    plans.fingerprint_digest = fingerprint_digest(fingerprint)
    target = data_root.plans_file(dataset_folder.name, planner)
    plans.save(target)
    log.info("wrote %s", target)
    return plans


def planned_time_budget(configuration) -> float | None:  # noqa: ANN001 - a ConfigurationPlan
    """The training budget a configuration was sized for (its "training budget" decision), or None."""
    for decision in configuration.decisions:
        if decision.what == "training budget":
            return float(decision.value)
    return None
