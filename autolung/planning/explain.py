"""Human-readable account of a plan: each decision, its value, and the rule that made it."""
from __future__ import annotations

from typing import Any

from autolung.planning.plans import Plans

CONFIGURATION_ORDER = ("2d", "3d_fullres", "3d_lowres")


def _value(value: Any) -> str:
    """Compact text: floats with 6 significant digits (header spacings carry float32 noise)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def format_explanation(plans: Plans) -> str:
    """The decisions of every configuration as plain text (for ``autolung plan --explain``).

    Args:
        plans: the plans.

    Returns:
        Multi-line text, one block per configuration.
    """
    lines = [f"Plans for {plans.dataset_name}: planner {plans.planner}, GPU memory budget "
             f"{plans.gpu_memory_gb:g} GB, channels {plans.channel_names}"]
    recommended = plans.recommended()
    lines.append(f"Configuration trained when none is named: {recommended.value}")
    lines.append(f"      because {recommended.rule}")
    names = [n for n in CONFIGURATION_ORDER if n in plans.configurations]
    names += [n for n in plans.configurations if n not in names]
    for name in names:
        cfg = plans.configurations[name]
        lines.append("")
        lines.append(f"[{name}] patch {cfg.patch_size}, batch {cfg.batch_size}, spacing "
                     f"{_value(cfg.spacing)}, {cfg.architecture.num_stages} stages "
                     f"({cfg.architecture.network})")
        if cfg.overrides:
            lines.append(f"  overrides: {_value(cfg.overrides)}")
        for decision in cfg.decisions:
            lines.append(f"  - {decision.what}: {_value(decision.value)}")
            lines.append(f"      because {decision.rule}")
    return "\n".join(lines) + "\n"
