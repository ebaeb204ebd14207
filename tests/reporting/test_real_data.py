"""Measurements on real data against independent implementations (nibabel counts, scikit-image Feret)."""
from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from skimage.measure import regionprops

from autolung.io.images import read_image, read_label
from autolung.reporting.measure import MeasurementOptions, measure_case
from conftest import shared_dataset


def _nibabel_ml(path, value: int) -> float:
    label = nib.load(str(path))
    return int(np.count_nonzero(np.asarray(label.dataobj) == value)) * abs(np.linalg.det(label.affine[:3, :3])) / 1000


@pytest.mark.shared_data
@pytest.mark.slow
def test_nsclc_tumour_volume_equals_an_independent_count():
    folder = shared_dataset("NSCLC_LungCT")
    path = folder / "labelsTr" / "lung1_003.nii.gz"
    labels, geometry = read_label(path)
    image, _ = read_image(folder / "imagesTr" / "lung1_003.nii.gz")
    case = measure_case("lung1_003", labels, geometry, image[0], MeasurementOptions(labels=(2,), lung_labels=(1,)))
    assert case.total_volume_ml == pytest.approx(_nibabel_ml(path, 2), rel=1e-9)
    # This case's lung label is one joined component: sides come from its middle.
    assert len(case.lesions) == 4 and {lesion.side_source for lesion in case.lesions} == {"lung_label_midline"}
    assert -200 < case.largest.hu["mean"] < 150  # soft tissue, not air


@pytest.mark.shared_data
def test_lidc_diameters_agree_with_scikit_image():
    folder = shared_dataset("LIDCNodules3D")
    compared = 0
    for path in sorted((folder / "labelsTr").glob("*.nii.gz"))[:12]:
        labels, geometry = read_label(path)
        case = measure_case(path.name, labels, geometry, None)
        assert case.total_volume_ml == pytest.approx(_nibabel_ml(path, 1), rel=1e-9)
        for lesion in case.lesions:
            mask = case.lesion_mask(lesion.lesion, labels.shape)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                feret = regionprops(mask[lesion.recist_slice].astype(np.uint8),
                                    spacing=geometry.spacing[1:])[0].feret_diameter_max
            # Same outline definition (edge midpoints); scikit-image fills concavities first.
            assert lesion.long_axis_mm == pytest.approx(feret, abs=max(geometry.spacing[1:]))
            assert lesion.short_axis_mm <= lesion.long_axis_mm + 1e-9
            assert lesion.max_diameter_3d_mm >= lesion.long_axis_mm - 1e-9
            compared += 1
    assert compared >= 12
