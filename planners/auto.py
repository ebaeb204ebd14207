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
import math
from collections.abc import Mapping, Sequence
from typing import Any

from autolung.fingerprint.schema import Fingerprint
from autolung.planning import budget as sizing
from autolung.planning.overrides import PlanOverrides
from autolung.planning.plans import ConfigurationPlan, Decision, Plans
from planners.default import DefaultPlanner

log = logging.getLogger(__name__)

# On a CPU a step costs in proportion to its batch, and a bigger batch adds no capacity: every rung
# caps it (nnU-Net's 3D batch, 8 in 2d). Task04 2d, one core: 39 patches of 56x40 bought 539
# steps in 5 minutes and test Dice 0.000, 1,010 steps in 10 minutes and 0.779; 8 patches bought
# 2,222 steps in 5 minutes and 0.821 (benchmarks/time_to_accuracy.py).
SMALL_BATCH = {2: 8, 3: 2}
# Steps 3d_fullres must buy to be recommended over a cheaper 2d on a CPU: 1,004 left the NSCLC
# tumour unlearned (Dice 0.015 against 2d's 0.306 side by side), 2,420 beat 2d on Task04.
MIN_3D_ITERATIONS = 2000
# (name, base features, max features per dim, memory budget in GB), widest (costliest step) first.
CPU_LADDER: tuple[tuple[str, int, dict[int, int], float], ...] = (
    ("full width, 8 GB patch (the GPU plan's patch)", 32, {2: 512, 3: 320}, 8.0),
    ("full width, 2 GB patch", 32, {2: 512, 3: 320}, 2.0),
    ("half width, 1 GB patch", 16, {2: 256, 3: 256}, 1.0),
    ("half width, 0.25 GB patch (the cpu preset)", 16, {2: 256, 3: 256}, 0.25),
    ("half width, 0.1 GB patch", 16, {2: 256, 3: 256}, 0.1),
)


# A 2d patch covering less than this share of the median image sees texture, not anatomy: with a
# few hundred CPU steps the chest X-ray network labelled the air around the body as lung (test Dice
# 0.59 at 1 mm; 0.79 with the in-plane spacing doubled, same budget; benchmarks/time_to_accuracy.py).
CONTEXT_COVERAGE = 0.25
# Coarsen until the patch covers this share of the median image ...
CONTEXT_TARGET = 1.0
# ... in steps of 2x, at most this much in all ...
MAX_IN_PLANE_COARSENING = 4.0
# ... while the 25th-percentile lesion of every class keeps at least this many pixels (8 x 8).
SMALLEST_LESION_PIXELS = 64.0


def _variant(name: str, base: int, widest: dict[int, int], memory_gb: float,
             in_plane_factor: float = 1.0) -> type[DefaultPlanner]:
    attributes = {"name": name, "base_features": base, "max_features": dict(widest),
                  "default_gpu_memory_gb": memory_gb, "max_batch": dict(SMALL_BATCH)}
    if in_plane_factor != 1.0:
        attributes["fullres_spacing"] = _coarser_in_plane(in_plane_factor)
    return type("AutoCandidate", (DefaultPlanner,), attributes)


def _coarser_in_plane(factor: float):
    """A ``fullres_spacing`` that multiplies the 2d configuration's in-plane spacing by ``factor``."""
    def fullres_spacing(self: DefaultPlanner, name: str) -> tuple[list[float], Decision]:
        spacing, decision = DefaultPlanner.fullres_spacing(self, name)
        if name != "2d":
            return spacing, decision
        coarse = [spacing[0], spacing[1] * factor, spacing[2] * factor]
        return coarse, Decision("target spacing", coarse, f"{decision.rule}; in-plane {factor:g}x coarser so the "
                                                          f"patch sees the anatomy (auto planner, CPU budget)")
    return fullres_spacing


def recommend_configuration(steps: Mapping[str, float], min_iterations: int, budget_s: float,
                            fullres_unpooled: Mapping[str, int] | None = None,
                            min_3d_iterations: int = MIN_3D_ITERATIONS) -> Decision:
    """The configuration ``train`` trains when none is named, from the steps each buys in the budget.

    3d_fullres where it buys ``min_3d_iterations`` steps (nnU-Net's choice, and the better model
    once trained); below that a 3D network has not converged, and 2d, whose steps are cheaper, is
    the better use of a short CPU budget when it buys more steps (NSCLC whole CTs in 5 minutes,
    side by side: 3d_fullres 0.406 in 1,004 steps, tumour 0.015; 2d 0.613 in 1,497, tumour 0.306;
    Task04 in 60 minutes: 3d_fullres 0.870 in 2,420 steps, docs/benchmarks.md). A 3d_fullres
    network that never downsamples an axis (its patch is too thin there) sees little more context
    than 2d along it, so 2d is recommended whenever it buys more steps, or enough steps to converge itself (LIDC
    nodule crops of 6 slices: 2d 0.857 against 3d_fullres 0.833 in 20 minutes; in 5 minutes, side
    by side, full-width 2d 0.836 in 2,851 steps against half-width 3d_fullres 0.827 in 3,001,
    docs/benchmarks.md).

    Args:
        steps: configuration name -> training steps its chosen plan buys in the budget.
        min_iterations: the steps a budget must buy (:data:`autolung.planning.budget.MIN_ITERATIONS`).
        budget_s: the training budget, for the reason.
        fullres_unpooled: axis name -> patch voxels along it, for each axis 3d_fullres never
            downsamples (None or empty: it pools every axis).
        min_3d_iterations: the steps 3d_fullres must buy to be recommended over a cheaper 2d.

    Returns:
        The decision (value: the configuration name).
    """
    what = "configuration"
    if "3d_fullres" not in steps:
        name = "2d" if "2d" in steps else next(iter(steps))
        return Decision(what, name, f"{name} is the only configuration planned for these images")
    full = steps["3d_fullres"]
    flat = steps.get("2d", 0.0)
    if fullres_unpooled and (flat > full or flat >= min_iterations):
        thin = ", ".join(f"{axis} ({size} voxels)" for axis, size in fullres_unpooled.items())
        return Decision(what, "2d", f"training device cpu: 3d_fullres never downsamples {thin}, so it sees little "
                                    f"more context there than 2d, which buys {flat:.0f} steps in {budget_s:g} s "
                                    f"against {full:.0f} (more, or >= {min_iterations})")
    if full >= min_3d_iterations or flat <= full:
        return Decision(what, "3d_fullres", f"training device cpu: 3d_fullres buys {full:.0f} steps in "
                                            f"{budget_s:g} s (>= {min_3d_iterations}, or no cheaper configuration)")
    return Decision(what, "2d", f"training device cpu: 3d_fullres buys only {full:.0f} steps in {budget_s:g} s "
                                f"(< {min_3d_iterations}, too few to converge), 2d buys {flat:.0f}")


def _measured(seconds: float) -> sizing.StepProbe:
    """A probe that returns an already measured step time."""
    return lambda *_: seconds


def unpooled_axes(config: ConfigurationPlan | None) -> dict[str, int]:
    """Axis name (z, y, x) -> patch size, for each axis a 3D configuration never downsamples.

    Args:
        config: the configuration plan, or None.

    Returns:
        The unpooled axes (empty for 2D plans, None, or a network that pools every axis).
    """
    if config is None or len(config.patch_size) != 3:
        return {}
    pooled = [math.prod(stride[axis] for stride in config.architecture.strides) for axis in range(3)]
    return {name: int(size) for name, size, factor in zip("zyx", config.patch_size, pooled) if factor == 1}


def smallest_lesion_pixels(fingerprint: Fingerprint, in_plane_spacing: Sequence[float]) -> float | None:
    """Pixels of the smallest class's 25th-percentile lesion at ``in_plane_spacing`` (2d).

    Args:
        fingerprint: the dataset fingerprint (its ``lesion_sizes``; mm² for 2D sets, mm³ for 3D
            ones, where a lesion's slice is taken as the face of a cube of its volume).
        in_plane_spacing: (y, x) in mm.

    Returns:
        The pixel count, or None when the fingerprint has no lesion sizes.
    """
    sizes = [stats.get("size_p25") for stats in (fingerprint.lesion_sizes or {}).values()
             if isinstance(stats, Mapping)]
    sizes = [float(s) for s in sizes if s is not None]
    if not sizes:
        return None
    area = min(sizes) if fingerprint.component_size_unit == "mm2" else min(sizes) ** (2.0 / 3.0)
    return area / (float(in_plane_spacing[0]) * float(in_plane_spacing[1]))


def coverage(config: ConfigurationPlan) -> float:
    """Share of the median image one patch covers (in-plane for 2d), at most 1."""
    median = config.median_shape_after_resampling[-config.dim:]
    return min(1.0, math.prod(config.patch_size) / max(1.0, float(math.prod(median))))


def _rung_index(candidate: sizing.Candidate) -> int:
    return [rung[0] for rung in CPU_LADDER].index(candidate.name)


def _fmt(values: Sequence[float]) -> str:
    return "x".join(f"{float(v):g}" for v in values)


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
            None measures on the device, every configuration's steps in turn
            (:func:`~autolung.planning.budget.probe_interleaved`).
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
        planned = self.plan_ladder(1.0, dataset_name)
        chosen_plans = planned[0]
        in_channels = len(chosen_plans.channel_names)
        out_channels = max(1, len(chosen_plans.region_mapping.regions))
        ladders = {name: self.candidates(planned, name) for name in planned[0].configurations}
        measured = dict(zip(ladders, self.measure([ladder[-1] for ladder in ladders.values()], in_channels,
                                                  out_channels)))
        configurations: dict[str, ConfigurationPlan] = {}
        memory, steps = {}, {}
        for name, candidates in ladders.items():
            chosen, probed = sizing.rank_candidates(candidates, budget_s, in_channels, out_channels,
                                                    _measured(measured[name]), self.min_iterations)
            index = _rung_index(chosen)
            config = planned[index].configurations[name]
            decisions = self.choice_decisions(candidates, chosen, probed, budget_s, budget_rule)
            if name == "2d":
                config, index, decisions, chosen = self.with_context(
                    config, index, decisions, chosen, candidates[-1], probed, budget_s, budget_rule, in_channels,
                    out_channels, dataset_name)
            memory[name] = CPU_LADDER[index][3]
            steps[name] = chosen.iterations
            config.decisions[:0] = decisions
            configurations[name] = config
        plans = planned[0]
        plans.configurations = configurations
        plans.planner = self.name
        plans.gpu_memory_gb = min(memory.values())
        plans.recommended_configuration = recommend_configuration(
            steps, self.min_iterations, budget_s, unpooled_axes(configurations.get("3d_fullres")))
        return plans

    def measure(self, references: Sequence[sizing.Candidate], in_channels: int, out_channels: int) -> list[float]:
        """Seconds per training step of each configuration's cheapest candidate.

        With no probe given, measured on the CPU with the configurations' steps in turn
        (:func:`~autolung.planning.budget.probe_interleaved`), so a passing load does not tip the
        choice between them.
        """
        if self.probe is not None:
            return [float(self.probe(c.architecture, c.patch_size, c.batch_size, in_channels, out_channels))
                    for c in references]
        return sizing.probe_interleaved([(c.architecture, c.patch_size, c.batch_size) for c in references],
                                        in_channels, out_channels)

    def plan_ladder(self, in_plane_factor: float, dataset_name: str | None) -> list[Plans]:
        """Every rung of :data:`CPU_LADDER` planned, the 2d in-plane spacing times ``in_plane_factor``."""
        return [_variant(*rung, in_plane_factor=in_plane_factor)(self.fingerprint, None, self.overrides)
                .plan(dataset_name) for rung in CPU_LADDER]

    @staticmethod
    def candidates(planned: Sequence[Plans], name: str) -> list[sizing.Candidate]:
        """The distinct sized plans of configuration ``name`` down the ladder, widest first."""
        candidates, seen = [], set()
        for rung, plans in zip(CPU_LADDER, planned):
            config = plans.configurations.get(name)
            key = None if config is None else (repr(config.architecture), tuple(config.patch_size), config.batch_size)
            if key is None or key in seen:  # a smaller budget that changes nothing is not a candidate
                continue
            seen.add(key)
            candidates.append(sizing.Candidate(rung[0], config.architecture, list(config.patch_size),
                                               config.batch_size))
        return candidates

    def with_context(self, fine: ConfigurationPlan, fine_index: int, fine_decisions: list[Decision],
                     fine_candidate: sizing.Candidate, probed_candidate: sizing.Candidate, probed: float,
                     budget_s: float, budget_rule: str, in_channels: int, out_channels: int,
                     dataset_name: str | None) -> tuple[ConfigurationPlan, int, list[Decision], sizing.Candidate]:
        """The 2d plan at a coarser in-plane spacing when the chosen patch sees too little of the image.

        Coarsens in 2x steps (at most :data:`MAX_IN_PLANE_COARSENING`) until the patch covers
        :data:`CONTEXT_TARGET` of the median image, while every class's 25th-percentile lesion keeps
        :data:`SMALLEST_LESION_PIXELS`; the coarser candidates are costed from the fine plan's
        measured step (``probed`` seconds of ``probed_candidate``), without measuring again.

        Returns:
            ``(configuration, ladder rung index, decisions, chosen candidate)``: the fine ones unchanged
            when kept.
        """
        share = coverage(fine)
        what = "in-plane resolution"
        if self.overrides is not None and not self.overrides.is_empty():
            return fine, fine_index, fine_decisions + [Decision(what, "kept", "the plan has user overrides")], \
                fine_candidate
        if share >= CONTEXT_COVERAGE:
            return fine, fine_index, fine_decisions + [Decision(
                what, "kept", f"the patch covers {share:.0%} of the median image (>= {CONTEXT_COVERAGE:.0%})")], \
                fine_candidate
        best, factor, stop = None, 2.0, ""
        while factor <= MAX_IN_PLANE_COARSENING:
            pixels = smallest_lesion_pixels(self.fingerprint, [s * factor for s in fine.spacing[1:]])
            if pixels is None or pixels < SMALLEST_LESION_PIXELS:
                stop = ("the fingerprint has no lesion sizes" if pixels is None else
                        f"at {factor:g}x the smallest class's 25th-percentile lesion would have {pixels:.0f} pixels "
                        f"(< {SMALLEST_LESION_PIXELS:g})")
                break
            planned = self.plan_ladder(factor, dataset_name)
            candidates = self.candidates(planned, "2d")
            chosen, _ = sizing.rank_candidates(candidates, budget_s, in_channels, out_channels,
                                               sizing.scaled_probe(probed, probed_candidate), self.min_iterations)
            index = _rung_index(chosen)
            config = planned[index].configurations["2d"]
            decisions = self.choice_decisions(candidates, chosen, probed, budget_s, budget_rule, probed_candidate)
            best = (config, index, factor, decisions, pixels, chosen)
            if coverage(config) >= CONTEXT_TARGET:
                break
            factor *= 2.0
        if best is None:
            return fine, fine_index, fine_decisions + [Decision(
                what, "kept", f"the patch covers only {share:.0%} of the median image, but {stop}")], fine_candidate
        config, index, factor, decisions, pixels, chosen = best
        return config, index, decisions + [Decision(
            what, f"{factor:g}x coarser",
            f"at {_fmt(fine.spacing[1:])} mm the {_fmt(fine.patch_size)} patch covers only {share:.0%} of the median "
            f"image (< {CONTEXT_COVERAGE:.0%}), too little context for a short CPU run; coarsened in 2x steps "
            f"(at most {MAX_IN_PLANE_COARSENING:g}x) until the patch covers {CONTEXT_TARGET:.0%}: now "
            f"{coverage(config):.0%}, the smallest class's 25th-percentile lesion keeping {pixels:.0f} pixels "
            f"(>= {SMALLEST_LESION_PIXELS:g}); predictions are resampled back to the input's grid")], chosen

    def choice_decisions(self, candidates: Sequence[sizing.Candidate], chosen: sizing.Candidate, probed: float,
                         budget_s: float, budget_rule: str,
                         probed_candidate: sizing.Candidate | None = None) -> list[Decision]:
        """The plan-choice, budget, probe and candidates decisions; ``probed_candidate`` is the one
        the probe measured (default: the cheapest of ``candidates``)."""
        reference = probed_candidate or candidates[-1]
        measured = ("the cheapest candidate" if reference is candidates[-1]
                    else "the cheapest candidate at the finer spacing")
        costs = {c.name: {"patch": c.patch_size, "batch": c.batch_size, "features": c.architecture.features_per_stage,
                          "s_per_step": round(c.step_s, 4), "steps_in_budget": int(c.iterations)}
                 for c in candidates}
        reached = chosen.iterations >= self.min_iterations
        interleaved = ("" if self.probe is not None else
                       "; every configuration's probe steps taken in turn, so a passing load slows them alike")
        rule = (f"the widest candidate whose step time buys >= {self.min_iterations} steps in the budget"
                if reached else f"no candidate buys {self.min_iterations} steps; the one that buys the most")
        return [
            Decision("plan choice", chosen.name, f"training device cpu: {rule} ({int(chosen.iterations)} steps "
                                                 f"at {chosen.step_s:.3f} s/step)"),
            Decision("training budget", budget_s, budget_rule),
            Decision("throughput probe", round(probed, 4),
                     f"measured s/step of {measured} ({reference.name}: patch "
                     f"{reference.patch_size}, batch {reference.batch_size}); the others scaled by their "
                     f"multiply-accumulates; {sizing.TRAINING_SHARE:.0%} of the budget after "
                     f"{sizing.FIXED_OVERHEAD_S:g} s start-up goes to training steps{interleaved}"),
            Decision("candidates", costs, "widest first"),
        ]
