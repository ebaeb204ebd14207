"""Is a label on the same grid as its image? Geometry comparison with a tolerance for float noise.

Headers store spacing/origin as float32 and directions as quaternions, so two files written for
the same grid by different tools differ in the last digits; those differences are accepted.
"""
from __future__ import annotations

import numpy as np

from autolung.io.geometry import ImageGeometry

SPACING_RTOL = 1e-4
ORIGIN_ATOL_MM = 1e-3
DIRECTION_ATOL = 1e-4


def geometry_differences(reference: ImageGeometry, other: ImageGeometry, what: str = "label",
                         against: str = "image") -> list[str]:
    """Describe how ``other`` differs from ``reference`` beyond float noise.

    Args:
        reference: the geometry everything must match (usually the image).
        other: the geometry to check (usually the label or another channel).
        what: name of ``other`` in the messages.
        against: name of ``reference`` in the messages.

    Returns:
        One message per differing property (shape, spacing, origin, direction); empty when
        they match.
    """
    problems = []
    if tuple(other.shape) != tuple(reference.shape):
        problems.append(f"{what} shape {tuple(other.shape)} differs from {against} shape {tuple(reference.shape)}")
    if other.file_dims != reference.file_dims:
        problems.append(f"{what} is {other.file_dims}D but {against} is {reference.file_dims}D")
        return problems
    if not _close(other.spacing, reference.spacing, rtol=SPACING_RTOL, atol=1e-6):
        problems.append(f"{what} spacing {_fmt(other.spacing)} differs from {against} spacing "
                        f"{_fmt(reference.spacing)}")
    if not _close(other.origin, reference.origin, rtol=1e-6, atol=ORIGIN_ATOL_MM):
        problems.append(f"{what} origin {_fmt(other.origin)} differs from {against} origin {_fmt(reference.origin)}")
    if not _close(other.direction, reference.direction, rtol=0.0, atol=DIRECTION_ATOL):
        problems.append(f"{what} direction {_fmt(other.direction)} differs from {against} direction "
                        f"{_fmt(reference.direction)}")
    return problems


def _close(a: tuple[float, ...], b: tuple[float, ...], rtol: float, atol: float) -> bool:
    if len(a) != len(b):
        return False
    return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rtol, atol=atol))


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"
