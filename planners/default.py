"""The default planner: a plain U-Net sized for a GPU memory budget (nnU-Net's rules, re-derived).

Configurations: ``2d``, ``3d_fullres``, and ``3d_lowres`` (with ``3d_cascade_fullres`` on top of
it) when the full-resolution patch covers less than a quarter of the median image. 2D datasets get only ``2d``.

Memory: the planner never runs a GPU. It multiplies the network's stored feature-map elements
(:func:`autolung.network.estimate_feature_map_elements`) by the batch size and a calibrated cost
per element. The calibration is nnU-Net's reference: a 3D U-Net with 560e6 elements per sample at
batch 2 (85e6 per sample at batch 12 in 2D) fills 8 GB, i.e. about 7 bytes per counted element
(fp16 activations plus the norm and activation copies and their gradients).

Subclass and change the class attributes (or override a step) to make another planner; register
it under the ``autolung.planners`` entry-point group.
"""
from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autolung.fingerprint.schema import Fingerprint
from autolung.network.estimate import estimate_feature_map_elements
from autolung.planning import rules
from autolung.planning.overrides import PlanOverrides
from autolung.planning.plans import ArchitecturePlan, ConfigurationPlan, Decision, NormalizationPlan, Plans
from autolung.planning.topology import Topology, compute_topology

log = logging.getLogger(__name__)


def _fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


class DefaultPlanner:
    """Plan a plain U-Net (``network = "unet"``) for a dataset fingerprint.

    Args:
        fingerprint: the dataset's :class:`~autolung.fingerprint.schema.Fingerprint` (or its
            fingerprint.json payload, which is read into one).
        gpu_memory_gb: GPU memory budget; None uses the planner's preset (8 GB here).
        overrides: forced patch size, batch size or spacing.
    """

    name = "default"
    network = "unet"
    default_gpu_memory_gb = 8.0
    # Calibration (see module docstring): elements per sample that fill reference_gb at reference_batch.
    reference_gb = 8.0
    reference_elements = {2: 85e6, 3: 560e6}
    reference_batch = {2: 12, 3: 2}
    # The patch is shrunk until this batch fits the budget.
    fit_batch = {2: 2, 3: 2}
    base_features = 32
    max_features = {2: 512, 3: 320}
    max_stages = {2: 7, 3: 6}
    encoder_blocks = 2
    encoder_blocks_per_stage: tuple[int, ...] | None = None
    decoder_convs = 2
    min_feature_edge = 4
    min_batch = 2
    # Per dimensionality; None: no cap beyond memory and the dataset share.
    max_batch: dict[int, int] | None = None
    max_dataset_fraction = 0.05
    lowres_threshold = 0.25
    lowres_spacing_step = 1.03
    initial_patch_voxels = {2: 2048 ** 2, 3: 256 ** 3}

    def __init__(self, fingerprint: Fingerprint | Mapping[str, Any], gpu_memory_gb: float | None = None,
                 overrides: PlanOverrides | None = None) -> None:
        self.fingerprint = Fingerprint.coerce(fingerprint)
        self.gpu_memory_gb = float(gpu_memory_gb if gpu_memory_gb is not None else self.default_gpu_memory_gb)
        # A budget other than the preset is an override like any other, recorded in every configuration.
        self.budget_override = self.gpu_memory_gb if self.gpu_memory_gb != self.default_gpu_memory_gb else None
        self.overrides = overrides or PlanOverrides()
        self.out_channels = max(1, len(self.fingerprint.region_mapping.regions))
        self.num_cases = self.fingerprint.num_cases

    # ----------------------------------------------------------------------------- memory model
    def gb_per_element(self, dim: int) -> float:
        """Memory cost of one counted feature-map element (GB), from the calibration."""
        return self.reference_gb / (self.reference_elements[dim] * self.reference_batch[dim])

    def estimate_gb(self, arch: ArchitecturePlan, patch: Sequence[int], batch_size: int) -> float:
        """Estimated training memory (GB) of ``arch`` with ``batch_size`` patches of ``patch``."""
        elements = estimate_feature_map_elements(arch, patch, out_channels=self.out_channels)
        return elements * batch_size * self.gb_per_element(arch.dim)

    # ----------------------------------------------------------------------------- architecture
    def blocks_per_stage(self, num_stages: int) -> list[int]:
        if self.encoder_blocks_per_stage is not None:
            blocks = list(self.encoder_blocks_per_stage)
            return (blocks + [blocks[-1]] * num_stages)[:num_stages]
        return [self.encoder_blocks] * num_stages

    def architecture(self, dim: int, topology: Topology) -> ArchitecturePlan:
        """The U-Net for a topology: features double from ``base_features`` up to the cap."""
        n = topology.num_stages
        features = [min(self.max_features[dim], self.base_features * 2 ** i) for i in range(n)]
        return ArchitecturePlan(network=self.network, dim=dim, features_per_stage=features,
                                strides=[list(s) for s in topology.strides],
                                kernel_sizes=[list(k) for k in topology.kernel_sizes],
                                blocks_per_stage=self.blocks_per_stage(n),
                                decoder_convs_per_stage=[self.decoder_convs] * (n - 1))

    def topology(self, spacing: Sequence[float], patch: Sequence[int]) -> Topology:
        return compute_topology(spacing, patch, self.min_feature_edge, self.max_stages[len(spacing)])

    # ----------------------------------------------------------------------------- patch size
    def initial_patch(self, spacing: Sequence[float], median: Sequence[int]) -> list[int]:
        """A patch with the median image's aspect ratio in mm, large at first, capped by the median shape."""
        dim = len(spacing)
        inverse = 1.0 / np.asarray(spacing, dtype=np.float64)
        scale = (self.initial_patch_voxels[dim] / np.prod(inverse)) ** (1.0 / dim)
        return [int(min(round(v * scale), m)) for v, m in zip(inverse, median)]

    def shrink_once(self, spacing: Sequence[float], patch: list[int], median: Sequence[int],
                    topology: Topology) -> tuple[list[int], Topology] | None:
        """Shrink the axis largest relative to the median shape by one divisible step; None if impossible."""
        ratios = [p / m for p, m in zip(patch, median)]
        # Largest ratio; on ties the last axis, so in-plane axes shrink before the slice axis.
        order = sorted(range(len(patch)), key=lambda a: (ratios[a], a), reverse=True)
        for axis in order:
            trial = list(patch)
            trial[axis] -= topology.divisor[axis]
            if trial[axis] < 1:
                continue
            # The divisor of the smaller patch may be smaller (fewer pools), so step by that one and
            # never skip a valid size.
            step = self.topology(spacing, trial).divisor[axis]
            smaller = list(patch)
            smaller[axis] -= step
            if smaller[axis] >= 1:
                new_topology = self.topology(spacing, smaller)
                return list(new_topology.patch_size), new_topology
        return None

    def fit_patch(self, spacing: Sequence[float], median: Sequence[int]) -> tuple[Topology, ArchitecturePlan, list]:
        """Largest patch (from the initial one, shrinking) whose estimate fits at ``fit_batch``."""
        dim = len(spacing)
        initial = self.initial_patch(spacing, median)
        topology = self.topology(spacing, initial)
        arch = self.architecture(dim, topology)
        patch = list(topology.patch_size)
        steps = 0
        while self.estimate_gb(arch, patch, self.fit_batch[dim]) > self.gpu_memory_gb:
            shrunk = self.shrink_once(spacing, patch, median, topology)
            if shrunk is None:
                log.warning("patch %s cannot shrink further; it exceeds the %g GB budget", patch, self.gpu_memory_gb)
                break
            patch, topology = shrunk
            arch = self.architecture(dim, topology)
            steps += 1
        gb = self.estimate_gb(arch, patch, self.fit_batch[dim])
        rule = (f"start {_fmt(initial)} (aspect ratio of 1/spacing, {self.initial_patch_voxels[dim]} voxels, "
                f"capped by median shape {_fmt(median)}), rounded up to the total stride")
        rule += (f"; shrank the axis largest relative to the median shape {steps} times until batch "
                 f"{self.fit_batch[dim]} fits {self.gpu_memory_gb:g} GB" if steps else
                 f"; batch {self.fit_batch[dim]} fits {self.gpu_memory_gb:g} GB without shrinking")
        decisions = [Decision("patch size", patch, rule + f" (estimate {gb:.2f} GB)")]
        return topology, arch, decisions

    def forced_patch(self, spacing: Sequence[float], forced: Sequence[int]) -> tuple[Topology, ArchitecturePlan, list]:
        """Topology for a user-forced patch; the patch is rounded up to the total stride."""
        topology = self.topology(spacing, forced)
        arch = self.architecture(len(spacing), topology)
        rule = f"override --patch-size {_fmt(forced)}; topology recomputed for it"
        if list(forced) != list(topology.patch_size):
            rule += f", rounded up to be divisible by the total stride {_fmt(topology.divisor)}"
        return topology, arch, [Decision("patch size", list(topology.patch_size), rule)]

    # ----------------------------------------------------------------------------- batch size
    def batch_size(self, arch: ArchitecturePlan, patch: Sequence[int], dataset_voxels: float,
                   forced: int | None) -> tuple[int, Decision]:
        """Batch size filling the budget, at least ``min_batch``, capped to 5% of the dataset's voxels."""
        per_sample = self.estimate_gb(arch, patch, 1)
        if forced is not None:
            note = f"override --batch-size {forced} (estimate {per_sample * forced:.2f} GB"
            over = per_sample * forced > self.gpu_memory_gb
            note += f", above the {self.gpu_memory_gb:g} GB budget)" if over else ")"
            return forced, Decision("batch size", forced, note)
        by_memory = int(round(self.gpu_memory_gb / per_sample))
        cap = int(round(dataset_voxels * self.max_dataset_fraction / math.prod(patch)))
        ceiling = (self.max_batch or {}).get(arch.dim)
        chosen = max(min(by_memory, cap, ceiling or by_memory), self.min_batch)
        rule = (f"{self.gpu_memory_gb:g} GB / {per_sample:.3f} GB per patch = {by_memory}; "
                f"cap so one batch covers at most {self.max_dataset_fraction:.0%} of the dataset's "
                f"{dataset_voxels:.3g} voxels = {cap}; ")
        rule += f"at most {ceiling} (planner cap); " if ceiling else ""
        rule += f"at least {self.min_batch}"
        return chosen, Decision("batch size", chosen, rule)

    # ----------------------------------------------------------------------------- configurations
    def plan_configuration(self, name: str, spacing: Sequence[float], median: Sequence[int], dataset_voxels: float,
                           normalization: list[NormalizationPlan], full_spacing: Sequence[float],
                           full_median: Sequence[int], extra: list[Decision]) -> ConfigurationPlan:
        """Topology, patch and batch for one configuration.

        Args:
            name: configuration name.
            spacing: spacing of the planned axes (2 for 2d, 3 for 3D).
            median: median resampled shape of the planned axes.
            dataset_voxels: voxels in the resampled dataset (for the batch cap).
            normalization: per-channel normalization.
            full_spacing: the configuration's (z, y, x) spacing as stored in the plan.
            full_median: the (z, y, x) median shape as stored in the plan.
            extra: decisions made before (spacing, shape), recorded first.
        """
        dim = len(spacing)
        forced = self.overrides.patch_for(name)
        topology, arch, decisions = (self.forced_patch(spacing, forced) if forced
                                     else self.fit_patch(spacing, median))
        patch = list(topology.patch_size)
        decisions.append(Decision("pooling", {"strides": arch.strides, "pools_per_axis": topology.pools_per_axis},
                                  f"pool an axis while its feature map keeps >= {self.min_feature_edge} voxels, only "
                                  f"axes within 2x of the finest spacing, at most {self.max_stages[dim]} stages "
                                  f"(total stride {_fmt(topology.divisor)})"))
        decisions.append(Decision("kernel sizes", arch.kernel_sizes,
                                  "3 along axes within 2x of the finest spacing, 1 along far coarser ones; "
                                  "3 everywhere in the bottleneck"))
        decisions.append(Decision("features per stage", arch.features_per_stage,
                                  f"{self.base_features} doubling per stage, capped at {self.max_features[dim]}; "
                                  f"{self.network}, blocks per stage {arch.blocks_per_stage}"))
        batch, batch_decision = self.batch_size(arch, patch, dataset_voxels, self.overrides.batch_for(name))
        decisions.append(batch_decision)
        for norm in normalization:
            decisions.append(Decision(f"normalization {norm.channel_name}", norm.scheme, norm.reason))
        aniso = rules.anisotropic_axis(full_spacing) if dim == 3 else None
        return ConfigurationPlan(
            name=name, dim=dim, spacing=[float(s) for s in full_spacing], patch_size=patch, batch_size=batch,
            architecture=arch, normalization=[NormalizationPlan(**vars(n)) for n in normalization],
            median_shape_after_resampling=[int(v) for v in full_median], anisotropic_axis=aniso,
            use_nonzero_mask_for_norm=any(n.scheme == "zscore_nonzero" for n in normalization),
            decisions=extra + decisions, overrides=self.recorded_overrides(name))

    def recorded_overrides(self, name: str) -> dict[str, Any]:
        """What the user forced for configuration ``name`` (for its ``overrides`` field)."""
        record = self.overrides.recorded_for(name)
        if self.budget_override is not None:
            record["gpu_memory_gb"] = self.budget_override
        return record

    def fullres_spacing(self, name: str) -> tuple[list[float], Decision]:
        forced = self.overrides.spacing_for(name)
        if forced:
            return forced, Decision("target spacing", forced, f"override --target-spacing {_fmt(forced)}")
        return rules.target_spacing(self.fingerprint)

    def plan_3d(self, normalization: list[NormalizationPlan]) -> dict[str, ConfigurationPlan]:
        """``3d_fullres`` and, when its patch covers < 25% of the median image, ``3d_lowres``."""
        spacing, spacing_decision = self.fullres_spacing("3d_fullres")
        median, shape_decision = rules.median_shape(self.fingerprint, spacing)
        voxels = float(np.prod(median, dtype=np.float64)) * self.num_cases
        full = self.plan_configuration("3d_fullres", spacing, median, voxels, normalization, spacing, median,
                                       [spacing_decision, shape_decision])
        result = {"3d_fullres": full}
        lowres = self.plan_lowres(full, normalization)
        if lowres is not None:
            result["3d_lowres"] = lowres
            result["3d_cascade_fullres"] = self.plan_cascade(full)
        return result

    def plan_cascade(self, full: ConfigurationPlan) -> ConfigurationPlan:
        """``3d_cascade_fullres``: 3d_fullres's grid, patch and network, fed the 3d_lowres
        prediction (one-hot) as extra input channels; it reads 3d_fullres's preprocessed cases."""
        cascade = copy.deepcopy(full)
        cascade.name = "3d_cascade_fullres"
        cascade.previous_stage = "3d_lowres"
        cascade.data_configuration = "3d_fullres"
        cascade.decisions = [d for d in cascade.decisions if d.what != "3d_lowres"]
        cascade.decisions.insert(0, Decision("3d_cascade_fullres", "planned",
                                             "3d_lowres is planned: its predictions, one-hot, are extra input "
                                             "channels of a 3d_fullres network (nnU-Net's cascade)"))
        return cascade

    def plan_lowres(self, full: ConfigurationPlan, normalization: list[NormalizationPlan]) -> ConfigurationPlan | None:
        """``3d_lowres`` when the 3d_fullres patch covers < 25% of the median image, else None.

        Records on ``full`` whether a low-resolution configuration was planned, and why.
        """
        full_median = np.asarray(full.median_shape_after_resampling, dtype=np.float64)
        coverage = math.prod(full.patch_size) / float(np.prod(full_median))
        threshold = f"{self.lowres_threshold:.0%}"
        if coverage >= self.lowres_threshold:
            full.decisions.append(Decision("3d_lowres", "not planned",
                                           f"the patch covers {coverage:.0%} of the median image (>= {threshold})"))
            return None
        lowres, spacing, shrink = self.coarsen_until_covered(full, normalization)
        if shrink < 2:
            full.decisions.append(Decision("3d_lowres", "not planned",
                                           f"the patch covers {coverage:.0%} of the median image, but a low-res "
                                           f"image would be only {shrink:.2f}x smaller (< 2x)"))
            return None
        lowres.decisions[:0] = [
            Decision("3d_lowres", "planned",
                     f"the 3d_fullres patch covers {coverage:.0%} (< {threshold}) of the median image"),
            Decision("target spacing", spacing,
                     f"3d_fullres spacing grown in {self.lowres_spacing_step}x steps (axes more than 2x finer than "
                     f"the coarsest first) until the patch covers >= {threshold} of the median image"),
            Decision("median shape after resampling", lowres.median_shape_after_resampling,
                     "3d_fullres median shape scaled by the spacing ratio")]
        full.decisions.append(Decision("3d_lowres", "planned",
                                       f"the patch covers only {coverage:.0%} of the median image (< {threshold})"))
        return lowres

    def coarsen_until_covered(self, full: ConfigurationPlan, normalization: list[NormalizationPlan],
                              max_steps: int = 500) -> tuple[ConfigurationPlan, list[float], float]:
        """Grow the spacing step by step and re-plan until the patch covers ``lowres_threshold``.

        Returns:
            ``(configuration, spacing, shrink)``: the last plan, its spacing, and how many times
            fewer voxels its median image has than 3d_fullres's.
        """
        full_spacing = np.asarray(full.spacing, dtype=np.float64)
        full_median = np.asarray(full.median_shape_after_resampling, dtype=np.float64)
        spacing = full_spacing.copy()
        for _ in range(max_steps):
            fine = spacing.max() / spacing > 2
            # Make the voxels more isotropic first: coarsen only the fine axes while any is 2x finer.
            spacing = np.where(fine, spacing * self.lowres_spacing_step, spacing) if fine.any() \
                else spacing * self.lowres_spacing_step
            median = full_spacing / spacing * full_median
            rounded = [int(round(v)) for v in median]
            voxels = float(np.prod(median)) * self.num_cases
            lowres = self.plan_configuration("3d_lowres", list(spacing), rounded, voxels, normalization,
                                             list(spacing), rounded, [])
            if math.prod(lowres.patch_size) / float(np.prod(median)) >= self.lowres_threshold:
                break
        return lowres, [float(v) for v in spacing], float(np.prod(full_median) / np.prod(median))

    def plan_2d(self, normalization: list[NormalizationPlan]) -> ConfigurationPlan:
        """In-plane configuration; the slice axis keeps its median spacing and is not resampled."""
        spacing, spacing_decision = self.fullres_spacing("2d")
        slice_spacing = float(np.median([spacing[0] for spacing in self.fingerprint.spacings]))
        full_spacing = [slice_spacing, spacing[1], spacing[2]]
        median3, _ = rules.median_shape(self.fingerprint, full_spacing)
        # Slices are not resampled in 2d: the slice count is the original (cropped) one.
        median3[0] = int(round(float(np.median([shape[0] for shape in self.fingerprint.shapes_after_crop]))))
        shape_decision = Decision("median shape after resampling", median3,
                                  f"median nonzero-cropped shape with in-plane spacing {_fmt(full_spacing[1:])} mm; "
                                  "slices keep their spacing")
        spacing_decision = Decision("target spacing", full_spacing,
                                    spacing_decision.rule + "; 2d resamples only in-plane")
        voxels = float(np.prod(median3, dtype=np.float64)) * self.num_cases
        return self.plan_configuration("2d", full_spacing[1:], median3[1:], voxels, normalization, full_spacing,
                                       median3, [spacing_decision, shape_decision])

    def plan(self, dataset_name: str | None = None) -> Plans:
        """Plan every configuration.

        Args:
            dataset_name: name recorded in the plans; default: the fingerprint's.

        Returns:
            The :class:`Plans` (not saved; see :func:`autolung.planning.run.plan_dataset`).
        """
        normalization = rules.normalization(self.fingerprint)
        configurations: dict[str, ConfigurationPlan] = {"2d": self.plan_2d(normalization)}
        if not self.fingerprint.is_2d:
            configurations.update(self.plan_3d(normalization))
        fp = self.fingerprint
        labels = {str(k): int(max(v) if isinstance(v, list) else v) for k, v in fp.labels.items()}
        return Plans(dataset_name=dataset_name or fp.dataset_name, planner=self.name,
                     channel_names=list(fp.channel_names), labels=labels, region_mapping=fp.region_mapping,
                     configurations=configurations, gpu_memory_gb=self.gpu_memory_gb,
                     file_ending=str(fp.file_ending if fp.file_ending is not None else ".nii.gz"))
