"""Residual-encoder U-Net planners: the "nnU-Net revisited" ResEnc M and L presets.

Same rules as :class:`planners.default.DefaultPlanner`; the network has residual basic blocks in
the encoder (1, 3, 4, 6, 6, 6, ... per stage) and one conv per decoder stage. Their calibration
(elements per sample filling the reference budget) is the published preset's, and the batch is
not capped by dataset size (the presets rely on their larger budgets instead).
"""
from __future__ import annotations

from planners.default import DefaultPlanner


class ResEncMPlanner(DefaultPlanner):
    """ResEnc M: about 9-11 GB of GPU memory in practice, preset for an 8 GB budget."""

    name = "resenc_m"
    network = "resenc_unet"
    default_gpu_memory_gb = 8.0
    reference_gb = 8.0
    reference_elements = {2: 135e6, 3: 680e6}
    reference_batch = {2: 12, 3: 2}
    # The presets size the patch so the reference batch fits (12 in 2D), as published.
    fit_batch = {2: 12, 3: 2}
    encoder_blocks_per_stage = (1, 3, 4, 6, 6, 6, 6)
    decoder_convs = 1
    max_dataset_fraction = 1.0


class ResEncLPlanner(ResEncMPlanner):
    """ResEnc L: preset for a 24 GB budget."""

    name = "resenc_l"
    default_gpu_memory_gb = 24.0
    reference_gb = 24.0
    reference_elements = {2: 380e6, 3: 2100e6}
