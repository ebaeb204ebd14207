"""The default augmentation pipeline (nnU-Net v2's recipe) for a configuration."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autolung.training.augmentation.base import Compose, Maybe
from autolung.training.augmentation.intensity import (
    Brightness,
    Contrast,
    Gamma,
    GaussianBlur,
    GaussianNoise,
    LowResolution,
)
from autolung.training.augmentation.mirror import RandomMirror
from autolung.training.augmentation.spatial import RandomAffineCrop, initial_patch_size, rotation_range

# Above this max/min spacing ratio, 3D augmentation stays in-plane (nnU-Net's threshold).
ANISOTROPY_THRESHOLD = 3.0


@dataclass(frozen=True)
class AugmentationPlan:
    """Where and how large patches are sampled before augmentation.

    Attributes:
        patch_size: final patch size.
        sample_size: enlarged size to read from the case (room for rotation/scaling).
        in_plane_axis: coarse axis for in-plane-only spatial augmentation, else None.
    """

    patch_size: tuple[int, ...]
    sample_size: tuple[int, ...]
    in_plane_axis: int | None


def plan_augmentation(patch_size: Sequence[int], spacing: Sequence[float]) -> AugmentationPlan:
    """Decide sample size and in-plane mode from the patch and the (z, y, x) spacing.

    Args:
        patch_size: final patch (2 or 3 values).
        spacing: the configuration's spacing (z, y, x).

    Returns:
        The :class:`AugmentationPlan`.
    """
    patch = tuple(int(p) for p in patch_size)
    in_plane_axis = None
    if len(patch) == 3 and max(spacing) / min(spacing) > ANISOTROPY_THRESHOLD:
        in_plane_axis = int(max(range(3), key=lambda a: spacing[a]))
    angle = rotation_range(len(patch), patch, in_plane_axis is not None)
    return AugmentationPlan(patch, initial_patch_size(patch, angle, in_plane_axis), in_plane_axis)


def default_pipeline(plan: AugmentationPlan, strength: float = 1.0) -> Compose:
    """nnU-Net's default training augmentation for ``plan``.

    Args:
        plan: from :func:`plan_augmentation`.
        strength: multiplies every transform's probability (1: nnU-Net's recipe; 0: only the
            random crop and mirroring). Mirroring stays at any strength: prediction mirrors too.

    Returns:
        A :class:`Compose` mapping a sample of ``plan.sample_size`` to one of ``plan.patch_size``.
    """
    dim = len(plan.patch_size)
    in_plane = plan.in_plane_axis is not None
    ignore_axes = (plan.in_plane_axis,) if in_plane else ()
    angle = rotation_range(dim, plan.patch_size, in_plane)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"`strength` must be in [0, 1], got {strength}")
    return Compose([
        RandomAffineCrop(plan.patch_size, angle, (0.7, 1.4), p_rotation=0.2 * strength, p_scale=0.2 * strength,
                         in_plane_axis=plan.in_plane_axis),
        Maybe(GaussianNoise((0.0, 0.1)), 0.1 * strength),
        Maybe(GaussianBlur((0.5, 1.0), p_per_channel=0.5), 0.2 * strength),
        Maybe(Brightness((0.75, 1.25)), 0.15 * strength),
        Maybe(Contrast((0.75, 1.25)), 0.15 * strength),
        Maybe(LowResolution((0.5, 1.0), p_per_channel=0.5, ignore_axes=ignore_axes), 0.25 * strength),
        Maybe(Gamma((0.7, 1.5), invert=True), 0.1 * strength),
        Maybe(Gamma((0.7, 1.5), invert=False), 0.3 * strength),
        RandomMirror(tuple(range(dim))),
    ])
