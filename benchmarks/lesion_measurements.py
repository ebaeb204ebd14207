"""Lesion measurements on real data against independent implementations.

* NSCLC_LungCT (3 NSCLC-Radiomics CTs, tumour GTV from RTSTRUCT contours): the tumour volume of
  ``autolung.reporting`` (sum over lesions) against an independent count: nibabel's voxel count
  of label 2 times the voxel volume from the NIfTI affine's determinant.
* LIDCNodules3D (LIDC-IDRI nodule crops): per lesion, the RECIST long axis against
  scikit-image's ``feret_diameter_max`` on the same slice (marching squares on the convex hull,
  physical spacing), and the 3D maximum diameter against scikit-image's 3D ``feret_diameter_max``
  (marching cubes), and the volume against the nibabel count.

Prints one table: ours, the reference, the difference and the ratio side by side.

Usage::

    python benchmarks/lesion_measurements.py            # all 734 LIDC crops
    python benchmarks/lesion_measurements.py --lidc 100  # the first 100
"""
from __future__ import annotations

import argparse
import warnings
import platform
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from skimage.measure import regionprops

from autolung.io.images import read_image, read_label
from autolung.reporting.measure import MeasurementOptions, measure_case

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def nibabel_volume_ml(path: Path, value: int) -> float:
    label = nib.load(str(path))
    voxel_mm3 = abs(float(np.linalg.det(label.affine[:3, :3])))
    return int(np.count_nonzero(np.asarray(label.dataobj) == value)) * voxel_mm3 / 1000.0


def skimage_feret(mask: np.ndarray, spacing) -> float:
    """scikit-image's maximum Feret diameter; NaN where it cannot compute one (a flat 3D lesion
    whose convex hull image is empty)."""
    try:
        region = regionprops(mask.astype(np.uint8), spacing=tuple(float(s) for s in spacing))[0]
        return float(region.feret_diameter_max)
    except (ValueError, RuntimeError):
        return float("nan")


def nsclc() -> list[tuple[str, float, float]]:
    rows = []
    folder = DATA / "NSCLC_LungCT"
    for label_path in sorted((folder / "labelsTr").glob("*.nii.gz")):
        labels, geometry = read_label(label_path)
        image, _ = read_image(folder / "imagesTr" / label_path.name)
        case = measure_case(label_path.name, labels, geometry, image[0],
                            MeasurementOptions(labels=(2,), lung_labels=(1,)))
        rows.append((label_path.name.split(".")[0], case.total_volume_ml, nibabel_volume_ml(label_path, 2)))
    return rows


def lidc(limit: int | None) -> dict[str, list[tuple[float, float]]]:
    folder = DATA / "LIDCNodules3D"
    pairs: dict[str, list[tuple[float, float]]] = {"long axis (mm)": [], "3D max diameter (mm)": [],
                                                   "volume (mL)": []}
    for label_path in sorted((folder / "labelsTr").glob("*.nii.gz"))[:limit]:
        labels, geometry = read_label(label_path)
        if labels.shape[0] < 2 or not labels.any():
            continue
        case = measure_case(label_path.name, labels, geometry, None)
        for lesion in case.lesions:
            mask = case.lesion_mask(lesion.lesion, labels.shape)
            pairs["long axis (mm)"].append(
                (lesion.long_axis_mm, skimage_feret(mask[lesion.recist_slice], geometry.spacing[1:])))
            pairs["3D max diameter (mm)"].append((lesion.max_diameter_3d_mm, skimage_feret(mask, geometry.spacing)))
        pairs["volume (mL)"].append((case.total_volume_ml, nibabel_volume_ml(label_path, 1)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lidc", type=int, default=None, help="Only the first N LIDC crops.")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Failed to get convex hull image")
    print(f"machine: {platform.processor() or platform.machine()}, shared with other jobs; figures are not timings")
    start = time.perf_counter()
    print("\nNSCLC_LungCT tumour volume (label 2), autolung vs nibabel voxel count x voxel volume")
    print(f"{'case':12s} {'autolung mL':>12s} {'nibabel mL':>12s} {'diff mL':>10s} {'ratio':>8s}")
    for case, ours, reference in nsclc():
        print(f"{case:12s} {ours:12.3f} {reference:12.3f} {ours - reference:10.4f} {ours / reference:8.5f}")
    print("\nLIDCNodules3D, autolung vs scikit-image feret_diameter_max (same slice / same 3D mask)")
    print(f"{'measure':22s} {'n':>5s} {'mean ours':>10s} {'mean ref':>10s} {'mean |diff|':>12s} "
          f"{'p95 |diff|':>11s} {'max |diff|':>11s} {'mean ratio':>11s}")
    for name, values in lidc(args.lidc).items():
        ours, reference = np.asarray(values).T
        skipped = int(np.count_nonzero(np.isnan(reference)))
        ours, reference = ours[~np.isnan(reference)], reference[~np.isnan(reference)]
        if skipped:
            print(f"  ({skipped} {name} comparison(s) skipped: scikit-image cannot measure flat lesions)")
        diff = np.abs(ours - reference)
        ratio = ours[reference > 0] / reference[reference > 0]
        print(f"{name:22s} {len(ours):5d} {ours.mean():10.3f} {reference.mean():10.3f} {diff.mean():12.4f} "
              f"{np.percentile(diff, 95):11.4f} {diff.max():11.4f} {ratio.mean():11.4f}")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
