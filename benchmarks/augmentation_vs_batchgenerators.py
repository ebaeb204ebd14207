"""Benchmark: autolung's augmentation transforms against batchgenerators' at equal parameters.

Usage::

    .venv/bin/python benchmarks/augmentation_vs_batchgenerators.py [--repeats-3d 5] [--repeats-2d 15]
        [--seed 0]

For a 3d_fullres-like sample (1 channel, patch 64x128x128 read from the enlarged 141x206x206 sample
that ``plan_augmentation`` asks for at isotropic spacing) and a 2d-like sample (1x256x256 from
426x426), each transform runs with the SAME fixed parameters in autolung and in batchgenerators:

- spatial: rotation (3D: 0.35, -0.25, 0.3 rad about axes 0, 1, 2; 2D: 1.0 rad) and zoom 1.1, centre
  crop to the patch, cubic (order 3) image, nearest (order 0) labels, zeros outside (constant
  border), no elastic deformation (autolung has none, nnU-Net v2 disables it). batchgenerators'
  ``augment_spatial`` maps output coordinates by ``scale * R^T`` (it multiplies row vectors by R),
  so autolung's deterministic twin ``affine_crop`` is given that same matrix;
- intensity: Gaussian noise (sigma 0.05), Gaussian blur (sigma 0.75), multiplicative brightness
  (1.1), contrast (1.2, range kept), low-resolution simulation (zoom 0.7, nearest down, cubic up),
  gamma 1.2 with statistics kept (plain and inverted), and mirroring along every axis.

Each figure is the median per-sample time of ``repeats`` runs, the two libraries interleaved (their
order alternating) so that load from other processes falls on both. batchgenerators works in place,
so its input is copied before the clock starts; autolung returns new arrays and that allocation is
timed. Agreement is the max and mean absolute difference of the images and the fraction of equal
label voxels; outputs are not expected bitwise equal (floating-point order, and for noise different
random streams: there the added noise's standard deviation is compared).

Inputs are synthetic (smoothed noise scaled like normalised CT plus a blob label, fixed seed):
the cost of these transforms depends on array sizes, not on values.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy
from batchgenerators.augmentations.color_augmentations import (
    augment_brightness_multiplicative,
    augment_contrast,
    augment_gamma,
)
from batchgenerators.augmentations.noise_augmentations import augment_gaussian_blur, augment_gaussian_noise
from batchgenerators.augmentations.resample_augmentations import augment_linear_downsampling_scipy
from batchgenerators.augmentations.spatial_transformations import augment_mirroring, augment_spatial
from scipy.ndimage import gaussian_filter
from scipy.ndimage import zoom as nd_zoom

from autolung.training.augmentation.base import Sample
from autolung.training.augmentation.intensity import (
    Brightness,
    Contrast,
    Gamma,
    GaussianBlur,
    GaussianNoise,
    LowResolution,
)
from autolung.training.augmentation.mirror import mirror
from autolung.training.augmentation.recipe import plan_augmentation
from autolung.training.augmentation.spatial import affine_crop, centre_crop, rotation_matrix

# Above 1: batchgenerators draws a zoom below 1 from (low, 1) half the time, so only a fixed zoom >= 1 is exact.
ZOOM = 1.1
ANGLES_3D = (0.35, -0.25, 0.3)
ANGLE_2D = 1.0


@dataclass
class Row:
    case: str
    transform: str
    ours_ms: float
    bg_ms: float
    agreement: str


def synthetic_sample(shape: tuple[int, ...], seed: int) -> Sample:
    """A smooth 'CT-like' normalised image and a blob label of that shape."""
    rng = np.random.default_rng(seed)
    small = rng.normal(size=tuple(max(4, s // 8) for s in shape)).astype(np.float32)
    zoom = [s / m for s, m in zip(shape, small.shape)]
    image = gaussian_filter(nd_zoom(small, zoom, order=1), 1.0)[tuple(slice(0, s) for s in shape)]
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    label = (sum(g ** 2 for g in grid) < 0.3).astype(np.int8)
    image = (image / image.std() + 2.0 * label).astype(np.float32)
    return Sample(image[None], label[None])


def timed_pair(ours: Callable[[], object], bg_setup: Callable[[], object], bg: Callable[[object], object],
               repeats: int) -> tuple[float, float, object, object]:
    """Median ms of ``ours()`` and ``bg(bg_setup())`` (setup untimed), interleaved, order alternating."""
    ours_times, bg_times = [], []
    ours_out = bg_out = None
    for index in range(repeats):
        for which in ((0, 1) if index % 2 == 0 else (1, 0)):
            if which == 0:
                start = time.perf_counter()
                ours_out = ours()
                ours_times.append(time.perf_counter() - start)
            else:
                argument = bg_setup()
                start = time.perf_counter()
                bg_out = bg(argument)
                bg_times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(ours_times), 1e3 * statistics.median(bg_times), ours_out, bg_out


def image_agreement(ours: np.ndarray, theirs: np.ndarray) -> str:
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    return f"max|d| {diff.max():.1e}, mean|d| {diff.mean():.1e}"


def spatial_row(case: str, sample: Sample, patch: tuple[int, ...], repeats: int) -> Row:
    dim = len(patch)
    angles = list(ANGLES_3D) if dim == 3 else [ANGLE_2D]
    # batchgenerators rotates row vectors (coords^T @ R), i.e. applies R^T, then scales.
    matrix = ZOOM * rotation_matrix(angles).T
    zero = (0.0, 0.0)
    kwargs = dict(patch_size=patch, do_elastic_deform=False, do_rotation=True,
                  angle_x=(angles[0], angles[0]), angle_y=(angles[1], angles[1]) if dim == 3 else zero,
                  angle_z=(angles[2], angles[2]) if dim == 3 else zero, do_scale=True, scale=(ZOOM, ZOOM),
                  border_mode_data="constant", border_cval_data=0, order_data=3, border_mode_seg="constant",
                  border_cval_seg=0, order_seg=0, random_crop=False)
    ours_ms, bg_ms, ours_out, bg_out = timed_pair(
        lambda: affine_crop(sample, matrix, patch),
        lambda: (sample.data[None], sample.seg[None]),
        lambda arrays: augment_spatial(arrays[0], arrays[1], **kwargs),
        repeats)
    same_labels = float((ours_out.seg == bg_out[1][0].astype(ours_out.seg.dtype)).mean())
    agreement = f"{image_agreement(ours_out.data, bg_out[0][0])}, labels equal {100 * same_labels:.4f} %"
    return Row(case, "rotate+zoom+crop (order 3 / 0)", ours_ms, bg_ms, agreement)


def mirror_row(case: str, sample: Sample, repeats: int) -> Row:
    axes = tuple(range(sample.data.ndim - 1))
    # A seed whose first draws are all < 0.5, so batchgenerators flips every axis, as we ask ours to.
    seed = next(s for s in range(10_000) if (np.random.RandomState(s).uniform(size=len(axes)) < 0.5).all())

    def bg_setup() -> tuple[np.ndarray, np.ndarray]:
        np.random.seed(seed)
        return sample.data.copy(), sample.seg.copy()

    ours_ms, bg_ms, ours_out, bg_out = timed_pair(
        lambda: mirror(sample, axes), bg_setup, lambda arrays: augment_mirroring(*arrays, axes=axes), repeats)
    same = bool(np.array_equal(ours_out.data, bg_out[0]) and np.array_equal(ours_out.seg, bg_out[1]))
    return Row(case, f"mirror axes {axes}", ours_ms, bg_ms, "bitwise equal" if same else "DIFFERENT")


def intensity_rows(case: str, sample: Sample, repeats: int) -> list[Row]:
    rows = []
    ignore: tuple[int, ...] = ()
    specs = [
        ("gaussian noise sigma 0.05", lambda: GaussianNoise().apply(sample, [(0.05, 1)]),
         lambda d: augment_gaussian_noise(d, (0.05, 0.05))),
        ("gaussian blur sigma 0.75", lambda: GaussianBlur().apply(sample, [0.75]),
         lambda d: augment_gaussian_blur(d, (0.75, 0.75))),
        ("brightness x1.1", lambda: Brightness().apply(sample, [1.1]),
         lambda d: augment_brightness_multiplicative(d, (1.1, 1.1))),
        ("contrast x1.2 (range kept)", lambda: Contrast().apply(sample, [1.2]),
         lambda d: augment_contrast(d, (1.2, 1.2), preserve_range=True, per_channel=True)),
        ("low resolution zoom 0.7", lambda: LowResolution().apply(sample, [(0.7, ignore)]),
         lambda d: augment_linear_downsampling_scipy(d, zoom_range=(0.7, 0.7), order_downsample=0,
                                                     order_upsample=3)),
        ("gamma 1.2 (stats kept)", lambda: Gamma().apply(sample, [(1.2, False)]),
         lambda d: augment_gamma(d, (1.2, 1.2), invert_image=False, per_channel=True, retain_stats=True)),
        ("gamma 1.2 inverted", lambda: Gamma(invert=True).apply(sample, [(1.2, True)]),
         lambda d: augment_gamma(d, (1.2, 1.2), invert_image=True, per_channel=True, retain_stats=True)),
    ]
    for name, ours, bg in specs:
        ours_ms, bg_ms, ours_out, bg_out = timed_pair(ours, lambda: sample.data.copy(), bg, repeats)
        if name.startswith("gaussian noise"):
            stds = [float(np.std(out - sample.data)) for out in (ours_out.data, bg_out)]
            agreement = f"different random streams; noise std {stds[0]:.4f} vs {stds[1]:.4f}"
        else:
            agreement = image_agreement(ours_out.data, bg_out)
            if name.startswith("gaussian blur"):
                interior = tuple([slice(None)] + [slice(4, -4)] * (sample.data.ndim - 1))
                inner = image_agreement(ours_out.data[interior], bg_out[interior]).replace("|d|", "|d| inside")
                agreement += f" (border mode nearest vs reflect; {inner.split(',')[0]})"
        rows.append(Row(case, name, ours_ms, bg_ms, agreement))
    return rows


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
            cpuinfo.seek(0)
            avx512 = "avx512f" in cpuinfo.read()
    except (OSError, StopIteration):
        return platform.machine()
    return f"{model}, {os.cpu_count()} cores, {'AVX-512' if avx512 else 'no AVX-512'}"


def print_table(rows: list[Row]) -> None:
    print("| case | transform | autolung ms | batchgenerators ms | ratio autolung / bg | agreement |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row.case} | {row.transform} | {row.ours_ms:.1f} | {row.bg_ms:.1f} | "
              f"{row.ours_ms / row.bg_ms:.2f} | {row.agreement} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats-3d", type=int, default=5)
    parser.add_argument("--repeats-2d", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"batchgenerators {importlib.metadata.version('batchgenerators')}, {cpu_name()}")
    rows: list[Row] = []
    for case, patch, repeats in (("3d 1x64x128x128", (64, 128, 128), args.repeats_3d),
                                 ("2d 1x256x256", (256, 256), args.repeats_2d)):
        plan = plan_augmentation(patch, (1.0,) * 3)
        sample = synthetic_sample(plan.sample_size, args.seed)
        print(f"{case}: sample {plan.sample_size} -> patch {patch}, {repeats} repeats", flush=True)
        rows.append(spatial_row(case, sample, patch, repeats))
        patch_sample = centre_crop(sample, patch)
        rows.append(mirror_row(case, patch_sample, repeats * 3))
        rows.extend(intensity_rows(case, patch_sample, repeats * 3))
    print_table(rows)


if __name__ == "__main__":
    main()
