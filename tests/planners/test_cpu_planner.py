from __future__ import annotations

import numpy as np
from synthetic_fingerprints import synthetic_fingerprint

from autolung.network.estimate import estimate_feature_map_elements
from autolung.planning.registry import load_planner


def _demo_like_fingerprint():
    return synthetic_fingerprint([(2.5, 0.71, 0.71)] * 20, [(40, 112, 112)] * 20)


def test_cpu_planner_is_registered_and_halves_widths_with_a_smaller_patch():
    fingerprint = _demo_like_fingerprint()
    default = load_planner("default")(fingerprint).plan("Demo").configurations["3d_fullres"]
    cpu = load_planner("cpu")(fingerprint).plan("Demo").configurations["3d_fullres"]
    assert cpu.architecture.features_per_stage[0] == default.architecture.features_per_stage[0] // 2
    assert max(cpu.architecture.features_per_stage) <= 256
    assert np.prod(cpu.patch_size) < np.prod(default.patch_size) / 2
    assert cpu.spacing == default.spacing and cpu.batch_size >= 2
    # The point of the preset: far fewer activations per step than the GPU-sized plan.
    cheap = estimate_feature_map_elements(cpu.architecture, cpu.patch_size)
    costly = estimate_feature_map_elements(default.architecture, default.patch_size)
    assert cheap * 8 < costly
