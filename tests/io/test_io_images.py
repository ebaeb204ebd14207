"""Image IO: exact geometry round trips per format, colour handling, labels, bad files."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import skimage.io

from autolung.errors import InvalidInputError
from autolung.io.geometry import SPACING_2D_SLICE
from autolung.io.images import read_geometry, read_image, read_label, write_image

# A rotation about z by 30 degrees: a non-identity direction that every 3D format must keep.
_C, _S = np.cos(np.pi / 6), np.sin(np.pi / 6)
ROTATED = (_C, -_S, 0.0, _S, _C, 0.0, 0.0, 0.0, 1.0)
SPACING_XYZ = (0.7, 0.8, 2.5)
ORIGIN = (-12.5, 30.25, 4.0)


def _sitk_volume(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(ORIGIN)
    image.SetDirection(ROTATED)
    return image


@pytest.mark.parametrize("ending", [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"])
def test_3d_round_trip_keeps_values_and_geometry(tmp_path: Path, ending: str) -> None:
    values = np.random.default_rng(0).integers(-1000, 1000, size=(5, 7, 9)).astype(np.int16)
    source = tmp_path / f"image{ending}"
    sitk.WriteImage(_sitk_volume(values), str(source))

    array, geometry = read_image(source)
    assert array.shape == (1, 5, 7, 9) and array.dtype == np.int16
    np.testing.assert_array_equal(array[0], values)
    assert geometry.shape == (5, 7, 9)
    np.testing.assert_allclose(geometry.spacing, (2.5, 0.8, 0.7), rtol=1e-6)
    np.testing.assert_allclose(geometry.origin, ORIGIN, atol=1e-5)
    np.testing.assert_allclose(geometry.direction, ROTATED, atol=1e-6)
    assert geometry.file_dims == 3

    mask = (values > 0).astype(np.uint8)
    written = write_image(mask, geometry, tmp_path / "out" / "mask")  # no ending: the input's format
    assert written.name == "mask" + (".nii.gz" if ending == ".nii" else ending)
    mask_back, geometry_back = read_label(written)
    np.testing.assert_array_equal(mask_back, mask)
    assert geometry_back.shape == geometry.shape
    np.testing.assert_allclose(geometry_back.spacing, geometry.spacing, rtol=1e-6)
    np.testing.assert_allclose(geometry_back.origin, geometry.origin, atol=1e-5)
    np.testing.assert_allclose(geometry_back.direction, geometry.direction, atol=1e-6)
    assert not [p for p in written.parent.iterdir() if p.name.startswith(".partial-")]


def test_header_only_geometry_matches_full_read(tmp_path: Path) -> None:
    source = tmp_path / "image.nrrd"
    sitk.WriteImage(_sitk_volume(np.zeros((3, 4, 5), np.float32)), str(source))
    header = read_geometry(source)
    assert header.shape == read_image(source)[1].shape == (3, 4, 5)
    assert header.extra["dtype"] == "float32" and header.extra["num_channels"] == 1


def test_png_round_trip_is_2d_with_unit_spacing(tmp_path: Path) -> None:
    values = np.random.default_rng(1).integers(0, 256, size=(6, 10)).astype(np.uint8)
    source = tmp_path / "slice.png"
    skimage.io.imsave(str(source), values, check_contrast=False)

    array, geometry = read_image(source)
    assert array.shape == (1, 1, 6, 10)
    np.testing.assert_array_equal(array[0, 0], values)
    assert geometry.is_2d and geometry.shape == (1, 6, 10)
    assert geometry.spacing == (SPACING_2D_SLICE, 1.0, 1.0)

    mask = (array[0] > 128).astype(np.int64)  # int64 in, uint8 PNG out
    written = write_image(mask, geometry, tmp_path / "mask")
    assert written.suffix == ".png"
    stored = skimage.io.imread(str(written))
    assert stored.dtype == np.uint8 and stored.shape == (6, 10)
    back, geometry_back = read_label(written)
    np.testing.assert_array_equal(back, mask)
    assert geometry_back == geometry


@pytest.mark.parametrize("ending", [".tif", ".bmp"])
def test_other_lossless_raster_formats_round_trip(tmp_path: Path, ending: str) -> None:
    values = np.random.default_rng(2).integers(0, 256, size=(5, 7)).astype(np.uint8)
    skimage.io.imsave(str(tmp_path / f"in{ending}"), values, check_contrast=False)
    array, geometry = read_image(tmp_path / f"in{ending}")
    np.testing.assert_array_equal(array[0, 0], values)
    assert geometry.is_2d and geometry.file_format in ("tiff", "bmp")
    written = write_image(array[0], geometry, tmp_path / "out")
    back, geometry_back = read_image(written)
    np.testing.assert_array_equal(back, array)
    assert geometry_back.shape == geometry.shape and geometry_back.spacing == geometry.spacing


def test_jpeg_is_read_as_2d_and_masks_go_to_png(tmp_path: Path) -> None:
    skimage.io.imsave(str(tmp_path / "in.jpg"), np.full((6, 6), 90, np.uint8), check_contrast=False)
    array, geometry = read_image(tmp_path / "in.jpg")
    assert array.shape == (1, 1, 6, 6) and geometry.file_format == "jpeg"
    assert write_image(np.zeros((1, 6, 6), np.uint8), geometry, tmp_path / "mask").name == "mask.png"


def test_rgb_with_identical_channels_becomes_one_channel(tmp_path: Path) -> None:
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    skimage.io.imsave(str(tmp_path / "grey_rgb.png"), np.stack([grey] * 3, axis=-1), check_contrast=False)
    array, _ = read_image(tmp_path / "grey_rgb.png")
    assert array.shape == (1, 1, 6, 8)
    np.testing.assert_array_equal(array[0, 0], grey)


def test_true_colour_gives_luminance_or_three_channels(tmp_path: Path) -> None:
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    rgb[..., 2] = 100
    skimage.io.imsave(str(tmp_path / "colour.png"), rgb, check_contrast=False)
    three, _ = read_image(tmp_path / "colour.png")
    assert three.shape == (3, 1, 4, 5)
    luminance, _ = read_image(tmp_path / "colour.png", expected_channels=1)
    assert luminance.shape == (1, 1, 4, 5)
    np.testing.assert_allclose(luminance[0, 0, 0, 0], 0.299 * 200 + 0.114 * 100, rtol=1e-5)


def test_2d_nifti_stays_2d_and_one_slice_3d_nifti_stays_3d(tmp_path: Path) -> None:
    flat = sitk.GetImageFromArray(np.ones((4, 5), np.int16))
    flat.SetSpacing((0.5, 0.6))
    sitk.WriteImage(flat, str(tmp_path / "flat.nii.gz"))
    _, geometry = read_image(tmp_path / "flat.nii.gz")
    assert geometry.is_2d and geometry.spacing == pytest.approx((SPACING_2D_SLICE, 0.6, 0.5))

    slab = sitk.GetImageFromArray(np.ones((1, 4, 5), np.int16))
    slab.SetSpacing((0.5, 0.6, 3.0))
    sitk.WriteImage(slab, str(tmp_path / "slab.nii.gz"))
    array, geometry = read_image(tmp_path / "slab.nii.gz")
    assert array.shape == (1, 1, 4, 5) and not geometry.is_2d
    assert geometry.spacing == pytest.approx((3.0, 0.6, 0.5))
    written = write_image(array[0], geometry, tmp_path / "slab_out.nii.gz")
    assert read_image(written)[1].file_dims == 3


def test_4d_nifti_channels_become_c_axis_and_masks_are_written_3d(tmp_path: Path) -> None:
    volumes = [sitk.GetImageFromArray(np.full((3, 4, 5), value, np.float32)) for value in (1.0, 2.0)]
    for volume in volumes:
        volume.SetSpacing((1.5, 1.5, 4.0))
    sitk.WriteImage(sitk.JoinSeries(volumes), str(tmp_path / "multi.nii.gz"))
    array, geometry = read_image(tmp_path / "multi.nii.gz")
    assert array.shape == (2, 3, 4, 5)
    assert array[1].mean() == 2.0
    assert geometry.shape == (3, 4, 5) and geometry.spacing == pytest.approx((4.0, 1.5, 1.5))
    assert len(geometry.origin) == 3 and len(geometry.direction) == 9
    mask_path = write_image(np.ones((3, 4, 5), np.uint8), geometry, tmp_path / "mask.nii.gz")
    mask, mask_geometry = read_label(mask_path)
    assert mask.shape == (3, 4, 5) and mask_geometry.spacing == pytest.approx(geometry.spacing)


def test_float_label_with_whole_values_is_converted_with_warning(tmp_path: Path, caplog) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(np.array([[[0.0, 1.0], [2.0, 1.0]]], np.float32)),
                    str(tmp_path / "label.nii.gz"))
    with caplog.at_level(logging.WARNING):
        label, _ = read_label(tmp_path / "label.nii.gz")
    assert label.dtype.kind in "iu"
    np.testing.assert_array_equal(label, [[[0, 1], [2, 1]]])
    assert "converted" in caplog.text


def test_float_label_with_fractions_is_refused(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(np.array([[[0.0, 0.5]]], np.float32)), str(tmp_path / "label.nii.gz"))
    with pytest.raises(InvalidInputError, match="non-integer") as info:
        read_label(tmp_path / "label.nii.gz")
    assert info.value.path == tmp_path / "label.nii.gz"


@pytest.mark.parametrize("name, content", [
    ("empty.nii.gz", b""),
    ("text.nii.gz", b"this is not an image at all" * 10),
    ("text.png", b"not a png" * 20),
    ("text.nrrd", b"garbage"),
])
def test_bad_files_raise_naming_the_file(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match="cannot read image") as info:
        read_image(path)
    assert info.value.path == path


def test_truncated_files_raise(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32)),
                    str(tmp_path / "full.nii.gz"))
    skimage.io.imsave(str(tmp_path / "full.png"),
                      np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8), check_contrast=False)
    for full in (tmp_path / "full.nii.gz", tmp_path / "full.png"):
        cut = tmp_path / ("cut" + full.name[4:])
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(InvalidInputError, match="cannot read image") as info:
            read_image(cut)
        assert info.value.path == cut


def test_unsupported_ending_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="unsupported"):
        read_image(tmp_path / "notes.txt")
    with pytest.raises(InvalidInputError, match="not found"):
        read_image(tmp_path / "absent.nii.gz")


def test_failed_write_leaves_existing_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "mask.png"
    target.write_bytes(b"old")
    _, geometry = read_image(_write_png(tmp_path / "in.png"))
    with pytest.raises(InvalidInputError):
        write_image(np.full((1, 4, 4), 70000, np.int32), geometry, target)  # does not fit a PNG
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "mask.png"]


def _write_png(path: Path) -> Path:
    skimage.io.imsave(str(path), np.zeros((4, 4), np.uint8), check_contrast=False)
    return path
