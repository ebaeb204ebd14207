from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from autolung.dataset.layout import load_dataset, read_case
from autolung.demo_data import make_demo_case, write_demo_dataset
from autolung.errors import InvalidInputError

SMALL = (24, 80, 80)


def test_same_seed_same_case_and_different_seed_differs() -> None:
    first = make_demo_case(3, 1, shape=SMALL)
    again = make_demo_case(3, 1, shape=SMALL)
    other = make_demo_case(4, 1, shape=SMALL)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert first[2] == again[2]
    assert not np.array_equal(first[0], other[0])


def test_case_looks_like_thoracic_ct() -> None:
    for index in range(2):
        image, label, spacing = make_demo_case(0, index, with_lung_label=True)
        assert image.dtype == np.int16 and label.dtype == np.uint8 and image.shape == (40, 112, 112)
        assert spacing[0] == 2.5 and 0.66 <= spacing[1] == spacing[2] <= 0.76
        assert set(np.unique(label)) == {0, 1, 2}
        lungs = ndimage.binary_erosion(label == 2, iterations=2)
        assert -900 < np.median(image[lungs]) < -800
        assert image[0, 0, 0] < -900  # air outside the body
        tumour_core = ndimage.binary_erosion(label == 1)
        assert -30 < np.median(image[tumour_core]) < 90
        _, count = ndimage.label(label == 1)
        assert 1 <= count <= 3


def test_written_dataset_is_deterministic_and_readable(tmp_path: Path) -> None:
    first = write_demo_dataset(tmp_path / "a" / "Demo_LungCT", num_cases=3, seed=7, shape=SMALL)
    second = write_demo_dataset(tmp_path / "b" / "Demo_LungCT", num_cases=3, seed=7, shape=SMALL)
    spec = load_dataset(first)
    assert [c.case_id for c in spec.cases] == ["lung_000", "lung_001", "lung_002"]
    image, label, geometry = read_case(spec, spec.cases[0])
    # Same field of view as the default 40x112x112 at ~0.7x0.7x2.5 mm, coarser voxels.
    assert image.shape == (1, *SMALL) and geometry.spacing[0] == pytest.approx(2.5 * 40 / 24, abs=1e-3)
    assert 0.66 * 112 / 80 <= geometry.spacing[1] <= 0.76 * 112 / 80
    assert (label == 1).any() and set(np.unique(label)) <= {0, 1}
    for name in ("imagesTr/lung_002.nii.gz", "labelsTr/lung_002.nii.gz"):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(first / name)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(second / name)))
        np.testing.assert_array_equal(a, b)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    target = write_demo_dataset(tmp_path / "Demo_LungCT", num_cases=1, shape=SMALL)
    with pytest.raises(InvalidInputError, match="not empty"):
        write_demo_dataset(target, num_cases=1, shape=SMALL)
