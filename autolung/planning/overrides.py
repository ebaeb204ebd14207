"""User overrides of planner decisions (``--patch-size``, ``--batch-size``, ``--target-spacing``).

A planner re-derives everything that depends on an override: a forced patch size gets its own
pooling topology (and is rounded up to be divisible by the total stride), a forced spacing gives
new median shapes and patch sizes. Each configuration records the overrides it received.

``parse_overrides`` turns CLI strings into a :class:`PlanOverrides`; ``plan_and_preprocess`` and
``plan`` share it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autolung.errors import InvalidInputError

CONFIGURATIONS_3D = ("3d_fullres", "3d_lowres")
CONFIGURATIONS_2D = ("2d",)
ALL_CONFIGURATIONS = CONFIGURATIONS_2D + CONFIGURATIONS_3D


@dataclass
class PlanOverrides:
    """Forced values; None means "let the planner decide".

    Attributes:
        patch_size: (z, y, x) for 3D configurations or (y, x) for 2d.
        batch_size: forced batch size.
        target_spacing: (z, y, x) in mm; 2d uses its in-plane part.
        configurations: configurations the overrides apply to; None means the natural default
            (3-value patch: all 3D configurations; 2-value patch: 2d; spacing and batch size: all).
    """

    patch_size: list[int] | None = None
    batch_size: int | None = None
    target_spacing: list[float] | None = None
    configurations: list[str] | None = None

    def is_empty(self) -> bool:
        return self.patch_size is None and self.batch_size is None and self.target_spacing is None

    def applies_to(self, configuration: str) -> bool:
        """Whether these overrides touch ``configuration`` at all."""
        if self.configurations is not None:
            return configuration in self.configurations
        return True

    def patch_for(self, configuration: str) -> list[int] | None:
        """The forced patch for ``configuration``, or None."""
        if self.patch_size is None or not self.applies_to(configuration):
            return None
        dim = 2 if configuration == "2d" else 3
        return list(self.patch_size) if len(self.patch_size) == dim else None

    def batch_for(self, configuration: str) -> int | None:
        return self.batch_size if self.applies_to(configuration) else None

    def spacing_for(self, configuration: str) -> list[float] | None:
        return list(self.target_spacing) if self.target_spacing and self.applies_to(configuration) else None

    def recorded_for(self, configuration: str) -> dict[str, Any]:
        """The overrides that ``configuration`` received, for its ``overrides`` field."""
        record: dict[str, Any] = {}
        if (patch := self.patch_for(configuration)) is not None:
            record["patch_size"] = patch
        if (batch := self.batch_for(configuration)) is not None:
            record["batch_size"] = batch
        if (spacing := self.spacing_for(configuration)) is not None:
            record["target_spacing"] = spacing
        return record


def parse_number_list(values: str | Sequence[str | int | float] | None, kind: type, option: str,
                      lengths: Sequence[int]) -> list | None:
    """Numbers from ``"32 64 64"``, ``"32,64,64"``, ``"32x64x64"`` or a list of such pieces.

    Args:
        values: the raw option value(s); None or empty gives None.
        kind: ``int`` or ``float``.
        option: the parameter, in backquotes, for error messages.
        lengths: accepted counts.

    Returns:
        The parsed list, or None.

    Raises:
        InvalidInputError: when a piece is not a positive number or the count is wrong.
    """
    if values is None:
        return None
    pieces = [values] if isinstance(values, (str, int, float)) else list(values)
    tokens = []
    for piece in pieces:
        tokens += str(piece).replace(",", " ").replace("x", " ").split()
    if not tokens:
        return None
    try:
        numbers = [kind(float(t)) if kind is int and float(t).is_integer() else kind(t) for t in tokens]
    except ValueError:
        raise InvalidInputError(f"{option} expects {kind.__name__} values, got {' '.join(tokens)!r}") from None
    if any(n <= 0 for n in numbers):
        raise InvalidInputError(f"{option} values must be positive, got {numbers}")
    if len(numbers) not in lengths:
        counts = " or ".join(str(n) for n in lengths)
        raise InvalidInputError(f"{option} expects {counts} values, got {len(numbers)}: {numbers}")
    return numbers


def parse_overrides(patch_size: str | Sequence[str] | None = None, batch_size: int | None = None,
                    target_spacing: str | Sequence[str] | None = None,
                    configurations: str | Sequence[str] | None = None) -> PlanOverrides:
    """Build :class:`PlanOverrides` from CLI-style values.

    Args:
        patch_size: "Z Y X" (3D configurations) or "Y X" (2d), space/comma/x separated.
        batch_size: forced batch size.
        target_spacing: "Z Y X" in mm.
        configurations: configuration names (list or comma separated) the overrides apply to.

    Returns:
        The overrides.

    Raises:
        InvalidInputError: on malformed values or unknown configuration names.
    """
    patch = parse_number_list(patch_size, int, "`patch_size`", (2, 3))
    spacing = parse_number_list(target_spacing, float, "`target_spacing`", (3,))
    if batch_size is not None and batch_size < 1:
        raise InvalidInputError(f"`batch_size` must be at least 1, got {batch_size}")
    chosen = None
    if configurations:
        raw = [configurations] if isinstance(configurations, str) else list(configurations)
        chosen = [c for piece in raw for c in str(piece).replace(",", " ").split()]
        unknown = sorted(set(chosen) - set(ALL_CONFIGURATIONS))
        if unknown:
            raise InvalidInputError(f"unknown configuration(s) {unknown}; known: {', '.join(ALL_CONFIGURATIONS)}")
        if patch is not None:
            dims = {2 if c == "2d" else 3 for c in chosen}
            if dims != {len(patch)}:
                raise InvalidInputError(f"`patch_size` has {len(patch)} values but `configurations` selects {chosen}; "
                                        "use 2 values for 2d and 3 for 3D configurations")
    return PlanOverrides(patch_size=patch, batch_size=batch_size, target_spacing=spacing, configurations=chosen)
