"""Hand-made plans for preprocessing tests (no planner needed)."""
from __future__ import annotations

from autolung.labels import RegionMapping
from autolung.planning.plans import ArchitecturePlan, ConfigurationPlan, NormalizationPlan, Plans


def ct_normalization(channel: str = "CT") -> NormalizationPlan:
    return NormalizationPlan(channel, "ct", clip_low=-1000.0, clip_high=500.0, mean=-300.0, std=400.0)


def make_configuration(name: str, spacing: list[float], dim: int = 3, anisotropic_axis: int | None = None,
                       normalization: list[NormalizationPlan] | None = None) -> ConfigurationPlan:
    patch = [16, 16] if dim == 2 else [8, 16, 16]
    arch = ArchitecturePlan("unet", dim, [8, 16], [[1] * dim, [2] * dim], [[3] * dim, [3] * dim], [2, 2], [2])
    return ConfigurationPlan(name=name, dim=dim, spacing=spacing, patch_size=patch, batch_size=2, architecture=arch,
                             normalization=normalization or [ct_normalization()],
                             median_shape_after_resampling=[12, 32, 32], anisotropic_axis=anisotropic_axis)


def make_plans(configurations: list[ConfigurationPlan], labels: dict[str, int] | None = None,
               channels: list[str] | None = None) -> Plans:
    labels = labels or {"background": 0, "bright": 1, "dark": 2}
    return Plans(dataset_name="Tiny_CT", planner="default", channel_names=channels or ["CT"], labels=labels,
                 region_mapping=RegionMapping.one_per_label([v for v in labels.values() if v > 0]),
                 configurations={c.name: c for c in configurations})
