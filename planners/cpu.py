"""A planner for training on a CPU: a slimmer U-Net and a smaller patch.

The default plan is sized for an 8 GB GPU. On a 2-core CPU one step of it takes seconds (6.5 s
with bf16 autocast for the demo's 40x112x112 patch at batch 2), so a few minutes buy only a few
dozen iterations. Halving the widths (16 up to 256 features) quarters the convolution cost, and a
smaller memory budget shrinks the patch (28x64x64 on the demo data). Together one step is about
13x cheaper (0.5 s), so the demo's 5 minutes buy 400-500 iterations and a tumour Dice of 0.88-0.90
on unseen cases. In the same 5 minutes the default plan ran 13 iterations, and this planner with a
32x96x96 patch about 200, both still at Dice 0. Every other rule is the default planner's.
"""
from __future__ import annotations

from planners.default import DefaultPlanner


class CpuPlanner(DefaultPlanner):
    """Default rules with half the feature widths and a 0.25 GB-equivalent budget."""

    name = "cpu"
    default_gpu_memory_gb = 0.25
    base_features = 16
    max_features = {2: 256, 3: 256}
