"""The ``auto`` planner: the plan that trains best on the device it will run on, in the budget given.

On a GPU (CUDA or MPS) it is the default planner's plan (memory-budget rules). On a CPU it sizes
the widths, patch and batch from a short measured throughput probe and the training time budget:
it plans a ladder of candidates, widest first, and keeps the widest whose step time buys
:data:`autolung.planning.budget.MIN_ITERATIONS` steps in the budget (see that module for why).
Each configuration records the probe, every candidate's step time and step count, the budget and
the choice, so ``autolung plan --explain`` shows them. The budget is recorded as a decision
("training budget"), and ``autolung train`` uses it when given no ``--time-budget``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from autolung.fingerprint.schema import Fingerprint
from autolung.planning import budget as sizing
from autolung.planning.overrides import PlanOverrides
from autolung.planning.plans import ConfigurationPlan, Decision, Plans
from planners.default import DefaultPlanner

log = logging.getLogger(__name__)

# (name, base features, max features per dim, memory budget in GB), widest first.
CPU_LADDER: tuple[tuple[str, int, dict[int, int], float], ...] = (
    ("full width, 8 GB patch (the GPU plan)", 32, {2: 512, 3: 320}, 8.0),
    ("full width, 2 GB patch", 32, {2: 512, 3: 320}, 2.0),
    ("half width, 1 GB patch", 16, {2: 256, 3: 256}, 1.0),
    ("half width, 0.25 GB patch (the cpu preset)", 16, {2: 256, 3: 256}, 0.25),
    ("half width, 0.1 GB patch", 16, {2: 256, 3: 256}, 0.1),
)


def _variant(name: str, base: int, widest: dict[int, int], memory_gb: float) -> type[DefaultPlanner]:
    return type("AutoCandidate", (DefaultPlanner,), {"name": name, "base_features": base,
                                                      "max_features": dict(widest),
                                                      "default_gpu_memory_gb": memory_gb})


def resolve_device(device: str) -> str:
    """``auto`` -> "cuda" or "mps" when torch sees one, else "cpu"; other names unchanged."""
    if device != "auto":
        return device.split(":")[0]
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class AutoPlanner:
    """Choose the plan from the device and the training budget.

    Args:
        fingerprint: the dataset fingerprint (or its fingerprint.json payload).
        gpu_memory_gb: GPU memory budget (used on a GPU; the CPU ladder has its own).
        overrides: forced patch, batch or spacing (applied to every candidate).
        device: "auto", "cpu", "cuda" or "mps": the device training will run on.
        time_budget_s: training wall-clock budget; None = :data:`~autolung.planning.budget.DEFAULT_CPU_BUDGET_S`
            on a CPU.
        probe: step-time probe ``probe(arch, patch, batch, in_channels, out_channels) -> s``;
            None measures on the device (:func:`~autolung.planning.budget.probe_step_seconds`).
    """

    name = "auto"
    accepts_device_and_budget = True

    def __init__(self, fingerprint: Fingerprint | Mapping[str, Any], gpu_memory_gb: float | None = None,
                 overrides: PlanOverrides | None = None, device: str = "auto", time_budget_s: float | None = None,
                 probe: sizing.StepProbe | None = None, min_iterations: int = sizing.MIN_ITERATIONS) -> None:
        self.fingerprint = Fingerprint.coerce(fingerprint)
        self.gpu_memory_gb = gpu_memory_gb
        self.overrides = overrides
        self.requested_device = device
        self.time_budget_s = time_budget_s
        self.probe = probe
        self.min_iterations = min_iterations

    def plan(self, dataset_name: str | None = None) -> Plans:
        """Plan every configuration for the device and budget.

        Returns:
            The :class:`Plans` (planner "auto").
        """
        device = resolve_device(self.requested_device)
        if device != "cpu":
            plans = DefaultPlanner(self.fingerprint, self.gpu_memory_gb, self.overrides).plan(dataset_name)
            for config in plans.configurations.values():
                config.decisions.insert(0, Decision(
                    "plan choice", "default rules",
                    f"training device {device} ({self.requested_device} requested): a GPU, so the default "
                    f"planner's memory-budget rules"))
                if self.time_budget_s is not None:
                    config.decisions.insert(1, Decision("training budget", self.time_budget_s,
                                                        "--time-budget given at planning"))
            plans.planner = self.name
            return plans
        return self.plan_cpu(dataset_name)

    def plan_cpu(self, dataset_name: str | None) -> Plans:
        budget_s = self.time_budget_s if self.time_budget_s is not None else sizing.DEFAULT_CPU_BUDGET_S
        budget_rule = ("--time-budget given at planning" if self.time_budget_s is not None else
                       f"no time budget given: the CPU default of {sizing.DEFAULT_CPU_BUDGET_S / 60:g} minutes")
        if self.gpu_memory_gb is not None:
            log.warning("gpu_memory_gb=%g is ignored on a CPU: the auto planner sizes the plan from the "
                        "measured step time and the time budget", self.gpu_memory_gb)
        planned = [_variant(*rung)(self.fingerprint, None, self.overrides).plan(dataset_name) for rung in CPU_LADDER]
        chosen_plans = planned[0]
        in_channels = len(chosen_plans.channel_names)
        out_channels = max(1, len(chosen_plans.region_mapping.regions))
        probe = self.probe or sizing.probe_step_seconds
        configurations: dict[str, ConfigurationPlan] = {}
        memory = {}
        for name in planned[0].configurations:
            candidates, seen = [], set()
            for rung, plans in zip(CPU_LADDER, planned):
                config = plans.configurations.get(name)
                key = None if config is None else (repr(config.architecture), tuple(config.patch_size),
                                                   config.batch_size)
                if key is None or key in seen:  # a smaller budget that changes nothing is not a candidate
                    continue
                seen.add(key)
                candidates.append(sizing.Candidate(rung[0], config.architecture, list(config.patch_size),
                                                   config.batch_size))
            chosen, probed = sizing.rank_candidates(candidates, budget_s, in_channels, out_channels, probe,
                                                    self.min_iterations)
            index = [rung[0] for rung in CPU_LADDER].index(chosen.name)
            config = planned[index].configurations[name]
            memory[name] = CPU_LADDER[index][3]
            config.decisions[:0] = self.choice_decisions(candidates, chosen, probed, budget_s, budget_rule)
            configurations[name] = config
        plans = planned[0]
        plans.configurations = configurations
        plans.planner = self.name
        plans.gpu_memory_gb = min(memory.values())
        return plans

    def choice_decisions(self, candidates: Sequence[sizing.Candidate], chosen: sizing.Candidate, probed: float,
                         budget_s: float, budget_rule: str) -> list[Decision]:
        reference = candidates[-1]
        costs = {c.name: {"patch": c.patch_size, "batch": c.batch_size, "features": c.architecture.features_per_stage,
                          "s_per_step": round(c.step_s, 4), "steps_in_budget": int(c.iterations)}
                 for c in candidates}
        reached = chosen.iterations >= self.min_iterations
        rule = (f"the widest candidate whose step time buys >= {self.min_iterations} steps in the budget"
                if reached else f"no candidate buys {self.min_iterations} steps; the one that buys the most")
        return [
            Decision("plan choice", chosen.name, f"training device cpu: {rule} ({int(chosen.iterations)} steps "
                                                 f"at {chosen.step_s:.3f} s/step)"),
            Decision("training budget", budget_s, budget_rule),
            Decision("throughput probe", round(probed, 4),
                     f"measured s/step of the cheapest candidate ({reference.name}: patch "
                     f"{reference.patch_size}, batch {reference.batch_size}); the others scaled by their "
                     f"multiply-accumulates; {sizing.TRAINING_SHARE:.0%} of the budget after "
                     f"{sizing.FIXED_OVERHEAD_S:g} s start-up goes to training steps"),
            Decision("candidates", costs, "widest first"),
        ]
