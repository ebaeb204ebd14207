"""DefaultPlanner rules on synthetic fingerprints."""
from __future__ import annotations

import math

import pytest

from autolung.planning.overrides import PlanOverrides
from planners.default import DefaultPlanner
from planners.resenc import ResEncLPlanner, ResEncMPlanner
from synthetic_fingerprints import synthetic_fingerprint


@pytest.fixture
def make_fingerprint():
    return synthetic_fingerprint


def _ct(make_fingerprint, n: int = 20, spacing=(1.0, 1.0, 1.0), shape=(64, 64, 64), **kwargs):
    return make_fingerprint([spacing] * n, [shape] * n, **kwargs)


def test_thick_slices_use_the_10th_percentile_of_the_coarse_axis(make_fingerprint) -> None:
    spacings = [(5.0, 0.7, 0.7)] * 8 + [(2.5, 0.7, 0.7)] * 2
    fp = make_fingerprint(spacings, [(40, 512, 512)] * 10)
    plans = DefaultPlanner(fp).plan()
    full = plans.configuration("3d_fullres")
    assert full.spacing[0] == pytest.approx(2.5)  # not the median 5.0
    assert full.anisotropic_axis == 0  # 2.5 / 0.7 > 3: resampled separately along z
    assert "10th percentile" in full.decisions[0].rule


def test_thick_slices_with_many_voxels_keep_the_median(make_fingerprint) -> None:
    fp = make_fingerprint([(5.0, 0.7, 0.7)] * 8 + [(2.5, 0.7, 0.7)] * 2, [(300, 512, 512)] * 10)
    assert DefaultPlanner(fp).plan().configuration("3d_fullres").spacing[0] == pytest.approx(5.0)


def test_anisotropic_pooling_and_kernels(make_fingerprint) -> None:
    fp = make_fingerprint([(3.0, 0.8, 0.8)] * 10, [(100, 512, 512)] * 10)
    arch = DefaultPlanner(fp).plan().configuration("3d_fullres").architecture
    assert arch.strides[1] == [1, 2, 2]  # the thick axis is not pooled first
    assert arch.kernel_sizes[0] == [1, 3, 3]  # and sees no neighbours while far coarser
    assert arch.kernel_sizes[-1] == [3, 3, 3]


def test_pooling_stops_at_4_voxels_and_patch_is_divisible(make_fingerprint) -> None:
    plans = DefaultPlanner(_ct(make_fingerprint, shape=(20, 40, 40))).plan()
    cfg = plans.configuration("3d_fullres")
    total = [math.prod(s[a] for s in cfg.architecture.strides) for a in range(3)]
    assert all(p % t == 0 for p, t in zip(cfg.patch_size, total))
    bottom = [p // t for p, t in zip(cfg.patch_size, total)]
    assert all(4 <= b < 8 for b in bottom), (cfg.patch_size, total)


def test_patch_fits_the_memory_budget_and_grows_with_it(make_fingerprint) -> None:
    fp = _ct(make_fingerprint, spacing=(1.0, 1.0, 1.0), shape=(400, 400, 400))
    small = DefaultPlanner(fp, gpu_memory_gb=4).plan().configuration("3d_fullres")
    large = DefaultPlanner(fp, gpu_memory_gb=16).plan().configuration("3d_fullres")
    planner = DefaultPlanner(fp, gpu_memory_gb=4)
    assert planner.estimate_gb(small.architecture, small.patch_size, 2) <= 4
    assert math.prod(large.patch_size) > math.prod(small.patch_size)
    assert len(small.architecture.strides) <= 6 and max(small.architecture.features_per_stage) == 320


def test_batch_size_is_capped_by_dataset_size_but_at_least_2(make_fingerprint) -> None:
    few = DefaultPlanner(_ct(make_fingerprint, n=2, shape=(32, 32, 32))).plan().configuration("3d_fullres")
    assert few.batch_size == 2
    many = DefaultPlanner(_ct(make_fingerprint, n=400, shape=(32, 32, 32))).plan().configuration("3d_fullres")
    cap = round(400 * 32 ** 3 * 0.05 / math.prod(many.patch_size))
    assert many.batch_size == cap == 20


def test_2d_data_gets_only_2d(make_fingerprint) -> None:
    fp = make_fingerprint([(999.0, 0.5, 0.5)] * 10, [(1, 256, 256)] * 10, is_2d=True, file_ending=".png",
                          value_range={"min": 0.0, "max": 255.0, "integer": True})
    plans = DefaultPlanner(fp).plan()
    assert list(plans.configurations) == ["2d"]
    cfg = plans.configuration("2d")
    assert cfg.patch_size == [256, 256] and cfg.architecture.dim == 2
    assert cfg.normalization[0].scheme == "ct"  # windowed CT in a PNG is still CT
    assert max(cfg.architecture.features_per_stage) <= 512 and len(cfg.architecture.strides) <= 7


def test_8_bit_images_not_named_ct_are_rescaled(make_fingerprint) -> None:
    fp = make_fingerprint([(999.0, 0.5, 0.5)] * 10, [(1, 256, 256)] * 10, is_2d=True, file_ending=".png",
                          value_range={"min": 0.0, "max": 255.0, "integer": True}, channel_names=("xray",))
    norm = DefaultPlanner(fp).plan().configuration("2d").normalization[0]
    assert norm.scheme == "rescale_0_1" and "divide by 255" in norm.reason


def test_lowres_only_when_the_patch_covers_less_than_a_quarter(make_fingerprint) -> None:
    big = DefaultPlanner(_ct(make_fingerprint, shape=(300, 400, 400))).plan()
    assert "3d_lowres" in big.configurations
    low, full = big.configuration("3d_lowres"), big.configuration("3d_fullres")
    assert all(a > b for a, b in zip(low.spacing, full.spacing))
    assert math.prod(low.patch_size) >= 0.25 * math.prod(low.median_shape_after_resampling) * 0.95
    small = DefaultPlanner(_ct(make_fingerprint, shape=(64, 64, 64))).plan()
    assert set(small.configurations) == {"2d", "3d_fullres"}


def test_normalization_choices(make_fingerprint) -> None:
    ct = DefaultPlanner(_ct(make_fingerprint)).plan().configuration("3d_fullres").normalization[0]
    assert (ct.scheme, ct.clip_low, ct.clip_high, ct.mean, ct.std) == ("ct", -1000.0, 300.0, -500.0, 200.0)
    mri = DefaultPlanner(_ct(make_fingerprint, channel_names=("T2",))).plan()
    assert mri.configuration("3d_fullres").normalization[0].scheme == "zscore"
    cropped = DefaultPlanner(_ct(make_fingerprint, channel_names=("FLAIR",), relative_crop=0.5)).plan()
    cfg = cropped.configuration("3d_fullres")
    assert cfg.normalization[0].scheme == "zscore_nonzero" and cfg.use_nonzero_mask_for_norm
    unknown = DefaultPlanner(_ct(make_fingerprint, channel_names=("weird",))).plan()
    norm = unknown.configuration("3d_fullres").normalization[0]
    assert norm.scheme == "zscore" and "unknown channel name" in norm.reason


def test_forced_patch_recomputes_pooling_and_rounds_up(make_fingerprint) -> None:
    fp = _ct(make_fingerprint, shape=(128, 128, 128))
    plans = DefaultPlanner(fp, overrides=PlanOverrides(patch_size=[30, 50, 50])).plan()
    cfg = plans.configuration("3d_fullres")
    total = [math.prod(s[a] for s in cfg.architecture.strides) for a in range(3)]
    assert all(p % t == 0 for p, t in zip(cfg.patch_size, total))
    assert cfg.patch_size == [32, 56, 56] and total == [8, 8, 8]
    assert cfg.overrides == {"patch_size": [30, 50, 50]}
    assert plans.configuration("2d").overrides == {}  # a 3-value patch leaves 2d alone


def test_forced_spacing_recomputes_shape_and_batch_override(make_fingerprint) -> None:
    fp = _ct(make_fingerprint, shape=(64, 64, 64))
    overrides = PlanOverrides(target_spacing=[2.0, 2.0, 2.0], batch_size=3, configurations=["3d_fullres"])
    plans = DefaultPlanner(fp, overrides=overrides).plan()
    cfg = plans.configuration("3d_fullres")
    assert cfg.spacing == [2.0, 2.0, 2.0] and cfg.median_shape_after_resampling == [32, 32, 32]
    assert cfg.patch_size == [32, 32, 32] and cfg.batch_size == 3
    assert plans.configuration("2d").spacing == [1.0, 1.0, 1.0]


def test_resenc_presets(make_fingerprint) -> None:
    fp = _ct(make_fingerprint, shape=(200, 200, 200))
    m = ResEncMPlanner(fp).plan()
    arch = m.configuration("3d_fullres").architecture
    assert arch.network == "resenc_unet" and arch.blocks_per_stage[:4] == [1, 3, 4, 6]
    assert set(arch.decoder_convs_per_stage) == {1}
    large = ResEncLPlanner(fp).plan()
    assert large.gpu_memory_gb == 24.0 and m.gpu_memory_gb == 8.0
    large_patch, m_patch = large.configuration("3d_fullres").patch_size, m.configuration("3d_fullres").patch_size
    assert math.prod(large_patch) >= math.prod(m_patch)


def test_budget_override_is_recorded(make_fingerprint) -> None:
    plans = DefaultPlanner(_ct(make_fingerprint), gpu_memory_gb=12).plan()
    assert plans.gpu_memory_gb == 12 and plans.configuration("3d_fullres").overrides == {"gpu_memory_gb": 12.0}
    assert DefaultPlanner(_ct(make_fingerprint)).plan().configuration("2d").overrides == {}
