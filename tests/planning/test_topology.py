"""Pooling topology: stops at 4 voxels, pools thick axes later, rounds the patch up."""
from __future__ import annotations

from autolung.planning.topology import compute_topology


def test_isotropic_pools_until_4_voxels() -> None:
    topo = compute_topology([1.0, 1.0, 1.0], [64, 64, 64], min_edge=4, max_stages=10)
    assert topo.pools_per_axis == [4, 4, 4]  # 64 -> 32 -> 16 -> 8 -> 4
    assert topo.num_stages == 5 and topo.patch_size == [64, 64, 64]


def test_thick_axis_is_pooled_once_in_plane_catches_up() -> None:
    topo = compute_topology([3.0, 1.0, 1.0], [32, 128, 128], min_edge=4, max_stages=10)
    assert topo.strides[1] == [1, 2, 2]  # 3 / 1 >= 2: only in-plane first
    assert topo.strides[2] == [2, 2, 2]  # 3 / 2 < 2: now together
    assert topo.kernel_sizes[0] == [1, 3, 3] and topo.kernel_sizes[1] == [3, 3, 3]


def test_max_stages_caps_pooling() -> None:
    topo = compute_topology([1.0, 1.0], [512, 512], max_stages=7)
    assert topo.num_stages == 7 and topo.divisor == [64, 64]


def test_patch_rounded_up_to_total_stride() -> None:
    topo = compute_topology([1.0, 1.0, 1.0], [30, 50, 50], max_stages=6)
    assert topo.divisor == [8, 8, 8] and topo.patch_size == [32, 56, 56]


def test_lone_axis_needs_three_times_min_edge() -> None:
    topo = compute_topology([1.0, 1.0], [10, 64], max_stages=7)
    # y stops at 5 (< 8); x alone continues only while >= 12 voxels: 64 -> 32 -> 16 -> 8 stops.
    assert topo.pools_per_axis == [1, 3]
