"""Data augmentation for training patches.

Every random transform has two halves: ``sample(rng, sample) -> params`` draws its parameters and
a deterministic twin (a plain function) applies them, so a transform can be replayed exactly.
Whether a transform runs at all is decided by the separate :class:`~.base.Maybe` wrapper.
"""
from __future__ import annotations
